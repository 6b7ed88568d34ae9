package loadgen_test

import (
	"os"
	"testing"
	"time"

	"github.com/camelot/lancelot/cmd/internal/loadgen"
)

// childArgs makes the test binary the load's child processes (see TestMain).
func childArgs(t *testing.T) []string {
	t.Setenv(childEnv, "1")
	return []string{os.Args[0]}
}

func TestLoadSpreadsOverChildren(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  loadgen.Config
	}{
		// 4 probes + 20 held, 6 per process: this one holds 2, 3 children 6 each.
		{"idle", loadgen.WithPerProcess(loadgen.Config{Mode: loadgen.Idle, Connections: 20, Probes: 4}, 6)},
		// 7 connections, 3 per process: this one and 2 children.
		{"persistent", loadgen.WithPerProcess(loadgen.Config{Mode: loadgen.Persistent, Connections: 7, Pipeline: 2}, 3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startTestServer(t, correct)
			tc.cfg.Server, tc.cfg.Duration, tc.cfg.ChildArgs = s.addr(), 300*time.Millisecond, childArgs(t)
			res := run(t, tc.cfg)
			wantClean(t, res)
			inFlight := int64(tc.cfg.Connections * max(tc.cfg.Pipeline, 1))
			if got := s.answered.Load(); got < res.Exchanges || got > res.Exchanges+inFlight {
				t.Errorf("server answered %d, load counted %d", got, res.Exchanges)
			}
			if tc.cfg.Mode == loadgen.Idle && res.IdleHeld != int64(tc.cfg.Connections) {
				t.Errorf("idle held = %d, want %d", res.IdleHeld, tc.cfg.Connections)
			}
		})
	}
}

// TestLoadChildrenHoldDuringTimedPhase checks that children keep their idle
// connections open until the parent's timed phase ends.
func TestLoadChildrenHoldDuringTimedPhase(t *testing.T) {
	s := startTestServer(t, correct)
	l, err := loadgen.Start(t.Context(), loadgen.WithPerProcess(loadgen.Config{Server: s.addr(), Mode: loadgen.Idle,
		Connections: 12, Probes: 2, ChildArgs: childArgs(t)}, 5))
	if err != nil {
		t.Fatal(err)
	}
	waitProgress(t, l, func(p loadgen.Progress) bool { return p.Timed > 200*time.Millisecond })
	if n := s.open(); n != 14 {
		t.Errorf("connections open during the timed phase = %d, want 12 held + 2 probes", n)
	}
	res, err := l.Stop()
	if err != nil || res.IdleHeld != 12 {
		t.Errorf("Stop = held %d, %v; want 12 held", res.IdleHeld, err)
	}
}

func TestLoadChildFailureIsReported(t *testing.T) {
	s := startTestServer(t, correct)
	l, err := loadgen.Start(t.Context(), loadgen.WithPerProcess(loadgen.Config{Server: s.addr(), Connections: 4,
		Duration: 100 * time.Millisecond, ChildArgs: []string{"/bin/false"}}, 2))
	if err == nil {
		_, err = l.Wait()
	}
	if err == nil {
		t.Error("a load with a failing child succeeded")
	}
}
