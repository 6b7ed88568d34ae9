package supervisor

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/camelot/lancelot/shared/config"
	"github.com/camelot/lancelot/shared/control"
	"github.com/camelot/lancelot/shared/handoff"
	"github.com/camelot/lancelot/shared/handover"
)

// endsProc is a worker that keeps the handover ends it is sent, as the
// kernel would give it its own copies.
type endsProc struct {
	t    *testing.T
	pidv int
	got  []control.Message
}

func (p *endsProc) pid() int                                 { return p.pidv }
func (p *endsProc) signal(syscall.Signal)                    {}
func (p *endsProc) fetchStats(context.Context) control.Stats { return control.Stats{} }
func (p *endsProc) lastStats() control.Stats                 { return control.Stats{} }

func (p *endsProc) send(m control.Message) error {
	if m.File != nil {
		dup, err := dupFile(m.File)
		if err != nil {
			p.t.Fatal(err)
		}
		m.File = dup
		p.t.Cleanup(func() { dup.Close() })
	}
	p.got = append(p.got, m)
	return nil
}

// upgradeSupervisor is a supervisor with n ready workers and real handover
// channels, started by an upgrade from a predecessor running running.
func upgradeSupervisor(t *testing.T, n, running int, handoverMode string) (*Supervisor, []*endsProc) {
	cfg := config.Default()
	cfg.Workers = n
	cfg.Handover = handoverMode
	s := newSupervisor(Options{Config: cfg, Upgrade: &handoff.Upgrade{Running: running}})
	s.env.handoverPair = handover.Pair
	var procs []*endsProc
	for i := range n {
		p := &endsProc{t: t, pidv: 100 + i}
		w := &worker{proc: p, slot: i, ready: true}
		s.workers[w] = struct{}{}
		s.slots = append(s.slots, &slot{index: i, cur: w})
		procs = append(procs, p)
	}
	return s, procs
}

func requireHandOvers(t *testing.T, p *endsProc, role string, n int) {
	t.Helper()
	if len(p.got) != n {
		t.Fatalf("worker %d got %d messages, want %d", p.pidv, len(p.got), n)
	}
	for _, m := range p.got {
		if m.Type != control.TypeHandOver || m.Role != role || m.Reason != control.ReasonUpgrade || m.File == nil {
			t.Fatalf("worker %d got %+v, want a %s end for an upgrade", p.pidv, m, role)
		}
	}
}

// TestUpgradeConnReceivers: the successor makes one channel per end, as
// many as the larger worker count, gives the receiving sides to its
// workers round-robin and returns the sending sides, each paired with one.
func TestUpgradeConnReceivers(t *testing.T) {
	for _, tc := range []struct{ workers, running, ends int }{{2, 3, 3}, {3, 1, 3}, {1, 1, 1}, {2, 5, 5}} {
		s, procs := upgradeSupervisor(t, tc.workers, tc.running, "on")
		ends, err := s.upgradeConnReceivers()
		if err != nil || len(ends) != tc.ends {
			t.Fatalf("%d workers, predecessor ran %d: %d ends, %v; want %d", tc.workers, tc.running, len(ends), err, tc.ends)
		}
		for i, p := range procs {
			requireHandOvers(t, p, control.RoleReceive, (tc.ends-i+tc.workers-1)/tc.workers)
		}
		for i, end := range ends {
			if _, err := end.Write([]byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 1)
			recv := procs[i%tc.workers].got[i/tc.workers].File
			if _, err := recv.Read(b); err != nil || b[0] != byte(i) {
				t.Fatalf("end %d is not paired with worker %d's receiving end: %v %v", i, i%tc.workers, b, err)
			}
			end.Close()
		}
	}
}

// TestUpgradeConnReceiversOff: with --handover=off the successor sends no
// ends and its workers get nothing.
func TestUpgradeConnReceiversOff(t *testing.T) {
	s, procs := upgradeSupervisor(t, 2, 2, "off")
	ends, err := s.upgradeConnReceivers()
	if err != nil || len(ends) != 0 || len(procs[0].got)+len(procs[1].got) != 0 {
		t.Fatalf("--handover=off: %d ends, %v, workers sent %d and %d messages; want none", len(ends), err, len(procs[0].got), len(procs[1].got))
	}
}

// TestHandOverToSuccessor: the predecessor gives end i to worker i mod n
// as a sending side and closes its own copies; with --handover=off it
// only closes them.
func TestHandOverToSuccessor(t *testing.T) {
	for _, mode := range []string{"on", "off"} {
		s, procs := upgradeSupervisor(t, 2, 2, mode)
		var ends []*os.File
		for range 3 {
			send, receive, err := handover.Pair()
			if err != nil {
				t.Fatal(err)
			}
			receive.Close()
			ends = append(ends, send)
		}
		s.handOverToSuccessor(ends)
		want := []int{2, 1}
		if mode == "off" {
			want = []int{0, 0}
		}
		for i, p := range procs {
			requireHandOvers(t, p, control.RoleSend, want[i])
		}
		for i, end := range ends {
			if err := end.Close(); !errors.Is(err, os.ErrClosed) {
				t.Errorf("--handover=%s: end %d still open in the supervisor (close: %v)", mode, i, err)
			}
		}
	}
}
