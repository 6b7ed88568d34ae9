package loadgen_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/camelot/lancelot/cmd/internal/loadgen"
)

// run runs cfg to its end (at most 30 s) and fails the test on a load
// error.
func run(t *testing.T, cfg loadgen.Config) loadgen.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := loadgen.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start(%+v): %v", cfg, err)
	}
	res, err := l.Wait()
	if err != nil {
		t.Fatalf("load %+v: %v", cfg, err)
	}
	return res
}

// wantClean checks a load saw no error and measured something.
func wantClean(t *testing.T, res loadgen.Result) {
	t.Helper()
	if res.ErrorCount() != 0 || res.Exchanges == 0 || res.ExchangesPerS <= 0 {
		t.Errorf("result = %+v; want exchanges and no errors", res)
	}
	if res.Latency.P50 < 1 || res.Latency.Max < res.Latency.P999 || res.Latency.P999 < res.Latency.P50 {
		t.Errorf("latency = %+v; want 1 <= p50 <= p999 <= max", res.Latency)
	}
	if len(res.Errors) != len(loadgen.Kinds()) {
		t.Errorf("errors = %v; want every kind listed", res.Errors)
	}
}

func TestLoadModes(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  loadgen.Config
	}{
		{"persistent", loadgen.Config{Mode: loadgen.Persistent, Connections: 4}},
		{"pipelined", loadgen.Config{Mode: loadgen.Persistent, Connections: 3, Pipeline: 5}},
		{"reconnecting", loadgen.WithConnExchanges(loadgen.Config{Mode: loadgen.Persistent, Connections: 2}, 7)},
		{"book", loadgen.Config{Mode: loadgen.Book, Connections: 3}},
		{"idle", loadgen.Config{Mode: loadgen.Idle, Connections: 20, Probes: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startTestServer(t, correct)
			tc.cfg.Server, tc.cfg.Duration = s.addr(), 300*time.Millisecond
			res := run(t, tc.cfg)
			wantClean(t, res)
			if res.ConnectionsPerS <= 0 {
				t.Errorf("connections/s = %v, want > 0", res.ConnectionsPerS)
			}
			// Every counted exchange was answered; at most the questions
			// in flight at the stop were answered but not counted.
			inFlight := int64(tc.cfg.Connections * max(tc.cfg.Pipeline, 1))
			if got := s.answered.Load(); got < res.Exchanges || got > res.Exchanges+inFlight {
				t.Errorf("server answered %d, load counted %d", got, res.Exchanges)
			}
		})
	}
}

// TestLoadClosesCleanly checks that a stop drains the answers in flight:
// closing with unread answers would reset the server's connections.
func TestLoadClosesCleanly(t *testing.T) {
	for _, mode := range []loadgen.Mode{loadgen.Persistent, loadgen.Book} {
		s := startTestServer(t, correct)
		res := run(t, loadgen.Config{Server: s.addr(), Mode: mode, Connections: 8, Pipeline: 3,
			Duration: 200 * time.Millisecond})
		wantClean(t, res)
		s.close()
		if n := s.resets.Load(); n != 0 {
			t.Errorf("%s: server saw %d resets after the stop, want 0", mode, n)
		}
	}
}

func TestLoadIdleHolds(t *testing.T) {
	s := startTestServer(t, correct)
	res := run(t, loadgen.Config{Server: s.addr(), Mode: loadgen.Idle, Connections: 30, Probes: 3,
		Duration: 200 * time.Millisecond})
	wantClean(t, res)
	if res.IdleHeld != 30 {
		t.Errorf("idle held = %d, want 30", res.IdleHeld)
	}
}

func TestLoadSplitAnswers(t *testing.T) {
	s := startTestServer(t, correct, splitAnswers)
	// A second, not 200 ms: on a busy machine the first exchange can take
	// longer than that, and the test wants some.
	wantClean(t, run(t, loadgen.Config{Server: s.addr(), Connections: 2, Pipeline: 3,
		Duration: time.Second}))
}

func TestLoadCountsErrorKinds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply reply
		want  loadgen.ErrorKind
	}{
		{"wrong", func(q string) (string, bool, bool) {
			if q == "What is your favorite color?" {
				return "Yellow.", false, false
			}
			return correct(q)
		}, loadgen.WrongAnswer},
		{"short", func(q string) (string, bool, bool) {
			a, c, r := correct(q)
			return a[:len(a)-1] + "!", c, r
		}, loadgen.WrongAnswer},
		{"extra", func(q string) (string, bool, bool) {
			a, c, r := correct(q)
			return a + a, c, r
		}, loadgen.WrongAnswer},
		{"reset", func(q string) (string, bool, bool) {
			if q == "What is your favorite color?" { // after two answers
				return "", true, true
			}
			return correct(q)
		}, loadgen.Reset},
		{"reset before an answer", func(string) (string, bool, bool) { return "", true, true }, loadgen.ResetQueued},
		{"eof", func(string) (string, bool, bool) { return "", true, false }, loadgen.EOF},
		{"silent", func(string) (string, bool, bool) { return "", false, false }, loadgen.Timeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startTestServer(t, tc.reply)
			// Only the silent server needs a timeout short enough to
			// expire within the run; elsewhere a short one would count a
			// busy machine's late answer as a timeout.
			timeout := 5 * time.Second
			if tc.want == loadgen.Timeout {
				timeout = 100 * time.Millisecond
			}
			res := run(t, loadgen.Config{Server: s.addr(), Connections: 2, Pipeline: 2,
				Timeout: timeout, Duration: 400 * time.Millisecond})
			for _, k := range loadgen.Kinds() {
				if n := res.Errors[k]; (k == tc.want) != (n > 0) {
					t.Errorf("errors[%s] = %d (all: %v); want only %s", k, n, res.Errors, tc.want)
				}
			}
			if len(res.Examples) == 0 || len(res.Examples) > 5 || !strings.HasPrefix(res.Examples[0], string(tc.want)+": ") {
				t.Errorf("examples = %q; want one to five, each %q and the error", res.Examples, tc.want+": ")
			}
		})
	}
}

func TestLoadCountsRefused(t *testing.T) {
	s := startTestServer(t, correct)
	l, err := loadgen.Start(context.Background(), loadgen.Config{Server: s.addr(), Connections: 2,
		Duration: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	waitProgress(t, l, func(p loadgen.Progress) bool { return p.Exchanges > 10 })
	s.close() // the port now refuses; open connections see EOF or a reset
	waitProgress(t, l, func(p loadgen.Progress) bool { return p.Errors > 3 })
	if p := l.Progress(); p.ByKind[loadgen.Refused] == 0 {
		t.Errorf("progress errors by kind = %v, want refused among them", p.ByKind)
	}
	res, err := l.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors[loadgen.Refused] == 0 {
		t.Errorf("errors = %v, want refused", res.Errors)
	}
}

func TestLoadRunsUntilStopped(t *testing.T) {
	s := startTestServer(t, correct)
	l, err := loadgen.Start(context.Background(), loadgen.Config{Server: s.addr(), Connections: 3})
	if err != nil {
		t.Fatal(err)
	}
	waitProgress(t, l, func(p loadgen.Progress) bool { return p.Exchanges > 100 && p.Timed > 0 })
	res, err := l.Stop()
	if err != nil {
		t.Fatal(err)
	}
	wantClean(t, res)
	select {
	case <-l.Done():
	default:
		t.Error("Done not closed after Stop")
	}
}

func TestLoadStopsWithContext(t *testing.T) {
	s := startTestServer(t, correct)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	l, err := loadgen.Start(ctx, loadgen.Config{Server: s.addr(), Connections: 2, Mode: loadgen.Book})
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.Wait()
	if err != nil || time.Since(began) > 5*time.Second {
		t.Fatalf("Wait = %+v, %v after %v", res, err, time.Since(began))
	}
	wantClean(t, res)
}

func TestStartRejects(t *testing.T) {
	for _, tc := range []struct {
		server string
		want   error
	}{
		{"10.0.0.1:1060", loadgen.ErrNotLoopback},
		{"192.168.1.1:1060", loadgen.ErrNotLoopback},
		{"example.com:1060", loadgen.ErrNotLoopback},
		{"[2001:db8::1]:1060", loadgen.ErrNotLoopback},
		{closedPort(t), loadgen.ErrUnreachable},
	} {
		_, err := loadgen.Start(context.Background(), loadgen.Config{Server: tc.server})
		if !errors.Is(err, tc.want) {
			t.Errorf("Start(%q) = %v, want %v", tc.server, err, tc.want)
		}
	}
	if _, err := loadgen.Start(context.Background(), loadgen.Config{Mode: "bogus"}); err == nil {
		t.Error("Start with mode bogus succeeded")
	}
}

func TestLoadSpreadsSourceAddresses(t *testing.T) {
	s := startTestServer(t, correct)
	res := run(t, loadgen.WithPerSource(loadgen.Config{Server: s.addr(), Mode: loadgen.Idle, Connections: 10, Probes: 2,
		Duration: 100 * time.Millisecond}, 3))
	wantClean(t, res)
	if n := s.peerCount(); n != 4 { // 12 connections, 3 per source
		t.Errorf("source addresses seen = %d, want 4", n)
	}
}

func TestLoadTooBigWithoutChildren(t *testing.T) {
	s := startTestServer(t, correct)
	_, err := loadgen.Start(context.Background(), loadgen.WithPerProcess(loadgen.Config{Server: s.addr(), Connections: 10}, 4))
	if !errors.Is(err, loadgen.ErrTooManyConnections) {
		t.Errorf("Start = %v, want ErrTooManyConnections", err)
	}
}

// waitProgress polls l until cond holds, for at most 10 s.
func waitProgress(t *testing.T, l *loadgen.Load, cond func(loadgen.Progress) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(l.Progress()) {
		if time.Now().After(deadline) {
			l.Stop()
			t.Fatalf("progress stuck at %+v", l.Progress())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
