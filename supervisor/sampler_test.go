package supervisor

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/config"
	"github.com/camelot/lancelot/shared/control"
)

// countingProc is a worker whose counters the test sets.
type countingProc struct{ stats control.Stats }

func (p *countingProc) pid() int                                 { return 4242 }
func (p *countingProc) signal(syscall.Signal)                    {}
func (p *countingProc) send(control.Message) error               { return nil }
func (p *countingProc) fetchStats(context.Context) control.Stats { return p.stats }
func (p *countingProc) lastStats() control.Stats                 { return p.stats }

// TestStatusPerWorker: Status gives each slot its worker's uptime, open
// connections, the answer rate over the last sample interval, its restarts
// and the sockets lent to it.
func TestStatusPerWorker(t *testing.T) {
	clock := time.Unix(1_000_000, 0)
	s := newSupervisor(Options{Config: config.Default()})
	s.env.now = func() time.Time { return clock }
	p := &countingProc{}
	w := &worker{proc: p, slot: 0, started: clock, ready: true, serving: map[int]bool{0: true, 1: true}}
	s.slots = []*slot{{index: 0, home: []int{0}, cur: w}, {index: 1, home: []int{1}}}
	s.metrics.add(w)
	s.metrics.countRestart(1)
	s.updateMetrics()

	p.stats = control.Stats{Answered: 100, Active: 3}
	s.sample()
	clock = clock.Add(2 * time.Second)
	p.stats = control.Stats{Answered: 600, Active: 5}
	s.sample()
	clock = clock.Add(time.Second)

	st := s.Status()
	if len(st.Slots) != 2 {
		t.Fatalf("want 2 slots, have %+v", st.Slots)
	}
	sl := st.Slots[0]
	if sl.QuestionsPerSecond != 250 || sl.Connections != 5 || sl.Answered != 600 || sl.UptimeSeconds != 3 || sl.State != "ready" {
		t.Errorf("slot 0: want 250 q/s, 5 connections, 600 answered, 3 s up, ready; have %+v", sl)
	}
	if len(sl.Lent) != 1 || sl.Lent[0] != 1 {
		t.Errorf("slot 0: want socket 1 lent to it, have %v", sl.Lent)
	}
	if sl1 := st.Slots[1]; sl1.Restarts != 1 || sl1.State != "restarting" || sl1.PID != 0 || st.Slots[0].Restarts != 0 {
		t.Errorf("want slot 1 restarting with 1 restart, slot 0 none; have %+v", st.Slots)
	}
	if st.UptimeSeconds != 3 {
		t.Errorf("supervisor uptime: want 3 s, have %v", st.UptimeSeconds)
	}
	_, counts := s.stats()
	if counts.lentNow != 1 || counts.connLimit != s.cfg.ConnectionLimit() {
		t.Errorf("want 1 socket lent and the cap of one ready worker, have %+v", counts)
	}

	s.metrics.remove(w)
	if _, ok := s.metrics.samples[w]; ok {
		t.Error("an exited worker's sample is kept")
	}
}
