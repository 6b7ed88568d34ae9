package worker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/control"
	"github.com/camelot/lancelot/shared/handover"
	"github.com/camelot/lancelot/shared/lancelottest"
	"github.com/camelot/lancelot/worker"
)

// connect pairs from (sending) with to (receiving) over a new handover
// channel, as the supervisor does for two worker processes.
func connect(t *testing.T, from, to *worker.EventLoop, reason string, share int) <-chan error {
	t.Helper()
	s, done := receiveOn(t, to)
	from.HandOver(s, reason, share)
	return done
}

// receiveOn makes to receive on a new handover channel, as a worker does
// once its supervisor passed it the receiving end, and returns the
// sending end for HandOver.
func receiveOn(t *testing.T, to *worker.EventLoop) (*handover.Sender, <-chan error) {
	t.Helper()
	sf, rf, err := handover.Pair()
	if err != nil {
		t.Fatal(err)
	}
	s, err := handover.NewSender(sf)
	if err != nil {
		t.Fatal(err)
	}
	r, err := handover.NewReceiver(rf)
	if err != nil {
		t.Fatal(err)
	}
	return s, to.Receive(r, long)
}

// dialAsked opens n connections to addr, each answered once.
func dialAsked(t *testing.T, addr string, n int) []*lancelottest.Client {
	t.Helper()
	var cs []*lancelottest.Client
	for range n {
		c := lancelottest.Dial(t, addr)
		c.Ask(lancelottest.QName, lancelottest.AName)
		cs = append(cs, c)
	}
	return cs
}

// TestHandOverEverything: a stopping engine hands every connection over,
// a question split across the move included, and stops at once.
func TestHandOverEverything(t *testing.T) {
	forEachLoopCount(t, func(t *testing.T, loops int) {
		a, b := startEngine(t, loops, worker.Options{}), startEngine(t, loops, worker.Options{})
		cs := dialAsked(t, a.addr, 20)
		cs[0].Send("What is your")
		a.waitStatsFunc("20 answered", func(s control.Stats) bool { return s.Answered == 20 })
		done := connect(t, a.eng, b.eng, control.ReasonReload, 0)
		stopped := a.shutdown(long)
		if err := waitErr(t, stopped, 5*time.Second, "Shutdown after the handover"); err != nil {
			t.Fatalf("Shutdown = %v, want every connection gone without the timeout", err)
		}
		if err := waitErr(t, done, 5*time.Second, "the receiver"); err != nil {
			t.Fatalf("receiver: %v", err)
		}
		if got := a.eng.Stats().HandedOver[control.ReasonReload]; got != 20 {
			t.Errorf("handed over %d, want 20", got)
		}
		cs[0].Send(" quest?")
		cs[0].Expect(lancelottest.AQuest)
		lancelottest.AskAll(t, cs[1:], lancelottest.QColor, lancelottest.AColor)
		b.waitStatsFunc("20 active", func(s control.Stats) bool { return s.Active == 20 })
	})
}

// TestHandOverRebalance: a rebalance moves 1/share of the idle
// connections and the sender keeps serving the rest, and new clients.
func TestHandOverRebalance(t *testing.T) {
	a, b := startEngine(t, 1, worker.Options{}), startEngine(t, 1, worker.Options{})
	cs := dialAsked(t, a.addr, 10)
	done := connect(t, a.eng, b.eng, control.ReasonRebalance, 2)
	if err := waitErr(t, done, 5*time.Second, "the rebalance"); err != nil {
		t.Fatalf("receiver: %v", err)
	}
	if got := a.eng.Stats().HandedOver[control.ReasonRebalance]; got != 5 {
		t.Errorf("rebalance handed over %d of 10 with share 2, want 5", got)
	}
	lancelottest.AskAll(t, cs, lancelottest.QColor, lancelottest.AColor)
	if st := b.eng.Stats(); st.Active != 5 {
		t.Errorf("receiver holds %d connections, want 5", st.Active)
	}
	lancelottest.Dial(t, a.addr).Ask(lancelottest.QQuest, lancelottest.AQuest)
}

// TestHandOverWithinLimits: a receiver takes connections up to nine
// tenths of its cap, where it would start shedding idle ones, and refuses
// the rest, which the sender serves on.
func TestHandOverWithinLimits(t *testing.T) {
	a, b := startEngine(t, 1, worker.Options{}), startEngine(t, 1, worker.Options{MaxConnections: 4})
	cs := dialAsked(t, a.addr, 8)
	done := connect(t, a.eng, b.eng, control.ReasonScaleDown, 0)
	a.waitStatsFunc("5 refused", func(s control.Stats) bool { return s.HandoverRefused == 5 })
	stopped := a.shutdown(long)
	lancelottest.AskAll(t, cs, lancelottest.QColor, lancelottest.AColor)
	if st := b.eng.Stats(); st.Active != 3 {
		t.Errorf("receiver holds %d connections, want 3 (nine tenths of its cap 4)", st.Active)
	}
	if st := a.eng.Stats(); st.Active != 5 || st.HandedOver[control.ReasonScaleDown] != 3 {
		t.Errorf("sender: %d active, %d handed over; want 5 kept, 3 handed", st.Active, st.HandedOver[control.ReasonScaleDown])
	}
	for _, c := range cs {
		c.Conn.Close()
	}
	waitErr(t, stopped, 5*time.Second, "Shutdown once the kept clients left")
	waitErr(t, done, 5*time.Second, "the receiver")
}

// TestHandOverPerSourceLimit: a receiver takes no more connections from
// one address than --max-connections-per-source allows.
func TestHandOverPerSourceLimit(t *testing.T) {
	a, b := startEngine(t, 1, worker.Options{}), startEngine(t, 1, worker.Options{MaxConnectionsPerSource: 2})
	cs := dialAsked(t, a.addr, 5)
	connect(t, a.eng, b.eng, control.ReasonScaleDown, 0)
	a.waitStatsFunc("3 refused", func(s control.Stats) bool { return s.HandoverRefused == 3 })
	lancelottest.AskAll(t, cs, lancelottest.QColor, lancelottest.AColor)
	if st := b.eng.Stats(); st.Active != 2 {
		t.Errorf("receiver holds %d connections from one address, want its per-source cap 2", st.Active)
	}
}

// TestHandOverForwards: a receiver retired while its sender still hands
// it connections (a TTOU or an upgrade right behind a reload) takes them
// and passes them on through its own handover, and neither engine waits
// for its shutdown timeout.
func TestHandOverForwards(t *testing.T) {
	forEachLoopCount(t, func(t *testing.T, loops int) {
		a, b, c := startEngine(t, loops, worker.Options{}), startEngine(t, loops, worker.Options{}), startEngine(t, loops, worker.Options{})
		cs := dialAsked(t, a.addr, 20)
		toB, fromA := receiveOn(t, b.eng) // b received from a before it was retired
		toC := connect(t, b.eng, c.eng, control.ReasonScaleDown, 0)
		bStopped := b.shutdown(long)
		a.eng.HandOver(toB, control.ReasonReload, 0)
		aStopped := a.shutdown(long)
		waitAll(t, []waited{{aStopped, "the first sender's Shutdown"}, {fromA, "the forwarder's receiver"}, {bStopped, "the forwarder's Shutdown"}, {toC, "the last receiver"}})
		lancelottest.AskAll(t, cs, lancelottest.QColor, lancelottest.AColor)
		if got := b.eng.Stats().HandedOver[control.ReasonScaleDown]; got != 20 {
			t.Errorf("the forwarder handed on %d, want 20", got)
		}
		c.waitStatsFunc("20 active", func(s control.Stats) bool { return s.Active == 20 })
	})
}

// TestHandOverToldLate: a receiver stopped before it is told where to
// forward (its TERM overtook that message) refuses as stopping
// meanwhile, and waits, even with nothing of its own left to serve; its
// sender offers the connections again, and they move on once it
// forwards.
func TestHandOverToldLate(t *testing.T) {
	for _, own := range []int{0, 5} {
		t.Run(fmt.Sprintf("%d_own", own), func(t *testing.T) {
			t.Parallel()
			a, b, c := startEngine(t, 1, worker.Options{}), startEngine(t, 1, worker.Options{}), startEngine(t, 1, worker.Options{})
			mine := dialAsked(t, b.addr, own)
			cs := dialAsked(t, a.addr, 20)
			toB, fromA := receiveOn(t, b.eng)
			bStopped := b.shutdown(long)
			a.eng.HandOver(toB, control.ReasonReload, 0)
			aStopped := a.shutdown(long)
			lancelottest.AskAll(t, cs, lancelottest.QName, lancelottest.AName) // a serves them meanwhile
			toC := connect(t, b.eng, c.eng, control.ReasonReload, 0)
			waitAll(t, []waited{{aStopped, "the first sender's Shutdown"}, {fromA, "the forwarder's receiver"}, {bStopped, "the forwarder's Shutdown"}, {toC, "the last receiver"}})
			lancelottest.AskAll(t, append(cs, mine...), lancelottest.QColor, lancelottest.AColor)
			c.waitStatsFunc("all active", func(s control.Stats) bool { return s.Active == int64(20+own) })
			if st := a.eng.Stats(); st.HandoverRefused != 0 || st.HandedOver[control.ReasonReload] != 20 {
				t.Errorf("sender: %d refused for good, %d handed over; want 0 and 20", st.HandoverRefused, st.HandedOver[control.ReasonReload])
			}
		})
	}
}

// waited is a channel an engine or a receiver reports its end on.
type waited struct {
	c    <-chan error
	what string
}

// waitAll requires each to end well within 5 s, in turn.
func waitAll(t *testing.T, ws []waited) {
	t.Helper()
	for _, w := range ws {
		if err := waitErr(t, w.c, 5*time.Second, w.what); err != nil {
			t.Fatalf("%s: %v", w.what, err)
		}
	}
}
