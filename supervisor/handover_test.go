package supervisor

import (
	"context"
	"errors"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/config"
	"github.com/camelot/lancelot/shared/control"
	"github.com/camelot/lancelot/shared/handover"
)

// recordingProc is a worker process that records what the loop sends it.
type recordingProc struct {
	pidv    int
	msgs    []control.Message
	signals []syscall.Signal
	broken  bool
}

func (p *recordingProc) pid() int                  { return p.pidv }
func (p *recordingProc) signal(sig syscall.Signal) { p.signals = append(p.signals, sig) }
func (p *recordingProc) send(m control.Message) error {
	if p.broken {
		return errors.New("broken")
	}
	m.File = nil // the loop closes its copy after the send
	p.msgs = append(p.msgs, m)
	return nil
}
func (p *recordingProc) fetchStats(context.Context) control.Stats { return control.Stats{} }
func (p *recordingProc) lastStats() control.Stats                 { return control.Stats{} }

// handovers are the handover messages p got, as role/reason/share.
func (p *recordingProc) handovers() []control.Message {
	var out []control.Message
	for _, m := range p.msgs {
		if m.Type == control.TypeHandOver {
			out = append(out, control.Message{Role: m.Role, Reason: m.Reason, Share: m.Share})
		}
	}
	return out
}

// pairingSupervisor is a supervisor with n slots, each with a ready worker.
func pairingSupervisor(t *testing.T, n int, handoverSetting string) (*Supervisor, []*recordingProc) {
	t.Helper()
	cfg := config.Default()
	cfg.Handover = handoverSetting
	s := newSupervisor(Options{Config: cfg})
	s.env = env{now: time.Now, handoverPair: handover.Pair}
	var procs []*recordingProc
	for i := range n {
		p := &recordingProc{pidv: 100 + i}
		w := &worker{proc: p, slot: i, ready: true, serving: map[int]bool{}}
		s.workers[w] = struct{}{}
		s.slots = append(s.slots, &slot{index: i, cur: w})
		procs = append(procs, p)
	}
	return s, procs
}

func newReady(s *Supervisor, slot, pid int) (*worker, *recordingProc) {
	p := &recordingProc{pidv: pid}
	w := &worker{proc: p, slot: slot, ready: true, serving: map[int]bool{}}
	s.workers[w] = struct{}{}
	return w, p
}

func TestReplacedHandsOverThenRetires(t *testing.T) {
	s, procs := pairingSupervisor(t, 1, "on")
	old := s.slots[0].cur
	w, p := newReady(s, 0, 200)
	s.slots[0].cur = w
	s.replaced(old, w)
	if got := procs[0].handovers(); !slices.Equal(got, []control.Message{{Role: control.RoleSend, Reason: control.ReasonReload}}) {
		t.Errorf("old worker got %+v, want one send for reload", got)
	}
	if got := p.handovers(); !slices.Equal(got, []control.Message{{Role: control.RoleReceive, Reason: control.ReasonReload}}) {
		t.Errorf("new worker got %+v, want one receive for reload", got)
	}
	if !old.draining || !slices.Equal(procs[0].signals, []syscall.Signal{syscall.SIGTERM}) {
		t.Errorf("old worker draining %v, signals %v; want retired by TERM after the handover message", old.draining, procs[0].signals)
	}
}

func TestReplacedWithHandoverOffOnlyRetires(t *testing.T) {
	s, procs := pairingSupervisor(t, 1, "off")
	old := s.slots[0].cur
	w, p := newReady(s, 0, 200)
	s.slots[0].cur = w
	s.replaced(old, w)
	if len(procs[0].handovers())+len(p.handovers()) > 0 {
		t.Errorf("handover messages sent with --handover off: %+v %+v", procs[0].msgs, p.msgs)
	}
	if !old.draining {
		t.Errorf("old worker not retired")
	}
}

func TestScaleDownSpreadsOverSurvivors(t *testing.T) {
	s, procs := pairingSupervisor(t, 3, "on")
	removed := s.slots[2].cur
	s.slots = s.slots[:2]
	if !s.handOverAll(removed, s.survivors(), control.ReasonScaleDown) {
		t.Fatal("no handover started")
	}
	send := control.Message{Role: control.RoleSend, Reason: control.ReasonScaleDown}
	if got := procs[2].handovers(); !slices.Equal(got, []control.Message{send, send}) {
		t.Errorf("removed worker got %+v, want one send per survivor", got)
	}
	for i := range 2 {
		if got := procs[i].handovers(); !slices.Equal(got, []control.Message{{Role: control.RoleReceive, Reason: control.ReasonScaleDown}}) {
			t.Errorf("survivor %d got %+v, want one receive", i, got)
		}
	}
}

func TestRebalanceAsksEachForItsShare(t *testing.T) {
	s, procs := pairingSupervisor(t, 3, "on")
	s.slots[1].cur.draining = true // a worker on its way out gives nothing
	w, p := newReady(s, 3, 200)
	s.slots = append(s.slots, &slot{index: 3, cur: w})
	s.rebalance(w)
	want := []control.Message{{Role: control.RoleSend, Reason: control.ReasonRebalance, Share: 3}}
	for _, i := range []int{0, 2} {
		if got := procs[i].handovers(); !slices.Equal(got, want) {
			t.Errorf("worker %d got %+v, want %+v", i, got, want)
		}
	}
	if got := procs[1].handovers(); len(got) > 0 {
		t.Errorf("a draining worker was asked to rebalance: %+v", got)
	}
	if got := p.handovers(); len(got) != 2 {
		t.Errorf("new worker got %d receive ends, want 2", len(got))
	}
}

// A receiver whose control channel is broken is lost (killed), and the
// sender is not told to send into a channel nobody reads.
func TestHandoverToBrokenWorkerNotStarted(t *testing.T) {
	s, procs := pairingSupervisor(t, 2, "on")
	procs[0].broken = true
	if s.handOverAll(s.slots[1].cur, []*worker{s.slots[0].cur}, control.ReasonScaleDown) {
		t.Error("a handover started towards a broken worker")
	}
	if len(procs[1].handovers()) > 0 {
		t.Errorf("the sender got %+v", procs[1].msgs)
	}
	if !s.slots[0].cur.killed {
		t.Error("the broken receiver was not written off")
	}
}
