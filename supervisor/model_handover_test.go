package supervisor

// The model's handovers. The fakes hold client connections (counts), the
// model creates real handover channels for the supervisor and notes which
// fake got which end, and it moves connections along them as the workers
// would (see doc.go, "Handovers"). The invariant it checks: every
// connection is served. A worker the supervisor retired outside a full
// stop holds connections only with a way on to a live taker, unless a
// worker on that way died or hangs, no other worker is healthy yet (the
// next one ready gets them), or --handover=off. Nobody closes a
// connection a live worker could have taken; only a crash, a kill, or a
// full stop of a worker without a handover costs connections.

import (
	"os"
	"slices"
	"strconv"

	"github.com/camelot/lancelot/shared/control"
	"github.com/camelot/lancelot/shared/handover"
)

// modelChannel is a handover channel as the model sees it: which fake got
// which end. A channel of a binary upgrade's successor (sink) has its
// receiving side in the successor, which the model plays: it takes
// everything.
type modelChannel struct {
	from, to *fakeWorker
	sink     bool
	// all: the sender hands over every connection (reload, scale_down,
	// upgrade); otherwise 1/share of them, once (rebalance), and done.
	all    bool
	reason string
	share  int
	done   bool
	// orphan: its receiver was reaped and the supervisor paired the
	// sender with nobody else (it had nobody, or was stopping).
	orphan bool
}

// handoverPair is the model's env.handoverPair: a real channel, whose
// ends the model recognises when the supervisor passes them on.
func (m *model) handoverPair() (send, receive *os.File, err error) {
	send, receive, err = handover.Pair()
	if err != nil {
		return nil, nil, err
	}
	if m.ends == nil {
		m.ends = make(map[*os.File]*modelChannel)
	}
	c := &modelChannel{}
	m.chans = append(m.chans, c)
	m.ends[send], m.ends[receive] = c, c
	return send, receive, nil
}

// handoverEnd notes which end of which channel f got. Like a worker, the
// fake neither closes nor keeps msg.File: the supervisor closes its copy.
func (m *model) handoverEnd(f *fakeWorker, msg control.Message) {
	c, ok := m.ends[msg.File]
	switch {
	case !ok:
		m.fail("pid %d got a handover end the model did not create", f.pidv)
		return
	case isClosed(msg.File):
		m.fail("pid %d got a closed handover end", f.pidv)
		return
	}
	switch msg.Role {
	case control.RoleReceive:
		if f.termed {
			m.fail("pid %d, told to stop, was made a receiver (%s)", f.pidv, msg.Reason)
		}
		c.to = f
	case control.RoleSend:
		c.from, c.all, c.reason, c.share = f, msg.Reason != control.ReasonRebalance, msg.Reason, msg.Share
		m.tracef("pid %d hands to %s (%s)", f.pidv, c.receiver(), msg.Reason)
	default:
		m.fail("pid %d got a handover end with role %q", f.pidv, msg.Role)
	}
}

func (c *modelChannel) receiver() string {
	switch {
	case c.sink:
		return "the successor"
	case c.to == nil:
		return "nobody"
	}
	return "pid " + strconv.Itoa(c.to.pidv)
}

// checkEnds: the supervisor closes every handover end it made within the
// step that made it; the registry forgets the closed ones.
func (m *model) checkEnds() {
	for f := range m.ends {
		if !isClosed(f) {
			m.fail("handover end %s left open after a step", f.Name())
			f.Close()
		}
		delete(m.ends, f)
	}
}

// isClosed reports whether f was closed: its poll descriptor refuses use.
func isClosed(f *os.File) bool {
	rc, err := f.SyscallConn()
	return err != nil || rc.Control(func(uintptr) {}) != nil
}

// successorEnds are the connection receivers a successor that can take
// connections sends with "conns": as many as the predecessor runs workers,
// or one more; now and then one only, or none (its own workers failed).
func (m *model) successorEnds(f *fakeSuccessor) []*os.File {
	n := f.u.Running + m.rng.IntN(2)
	if k := m.rng.IntN(8); k < 2 {
		n = k
	}
	var ends []*os.File
	for range n {
		send, receive, err := m.handoverPair()
		if err != nil {
			m.t.Fatalf("successor's handover channel: %v", err)
		}
		receive.Close() // its workers' side, which the model plays
		m.ends[send].sink = true
		ends = append(ends, send)
	}
	return ends
}

// checkUpgradeEnds: given n ends by the successor, at least one for each
// of its healthy workers (from), the supervisor gives each of those that
// lives one to hand everything into.
func (m *model) checkUpgradeEnds(from []*worker, n int) {
	if !m.s.cfg.HandoverOn() || n < len(from) {
		return
	}
	for _, f := range m.fakes {
		if !slices.Contains(from, f.w) || f.dead || f.killed {
			continue
		}
		if !slices.ContainsFunc(m.chans, func(c *modelChannel) bool { return c.sink && c.from == f }) {
			m.fail("binary upgrade: pid %d got none of the successor's %d ends", f.pidv, n)
		}
	}
}

// connect gives a worker that accepts a few new clients.
func (m *model) connect() {
	f := m.pick(func(f *fakeWorker) bool { return f.ready && !f.termed && !f.dead && !f.hung && !f.killed })
	if f == nil {
		return
	}
	n := 1 + m.rng.IntN(5)
	f.conns += n
	m.opened += n
	m.tracef("%d clients connect to pid %d (holds %d)", n, f.pidv, f.conns)
}

// progress moves connections along the channels, as the workers do
// between themselves, until nothing moves: the channels form chains from
// retired workers to live ones (a receiver is healthy when paired), so
// this ends.
func (m *model) progress() {
	for round := 0; ; round++ {
		if round > 100 {
			m.fail("connections go round in circles along the handover channels")
			return
		}
		moved := false
		for _, c := range m.chans {
			moved = m.move(c) || moved
		}
		if !moved {
			return
		}
	}
}

// move moves what c's sender hands over, if the receiver takes it.
func (m *model) move(c *modelChannel) bool {
	f := c.from
	if f == nil || c.done || f.dead || f.hung || f.conns == 0 || !m.takes(c) {
		return false
	}
	n := f.conns
	if !c.all {
		n, c.done = f.conns/max(c.share, 1), true
	}
	if n == 0 {
		return false
	}
	f.conns -= n
	if c.sink {
		m.handedOn += n
	} else {
		c.to.conns += n
	}
	m.tracef("pid %d hands %d connections to %s (%s)", f.pidv, n, c.receiver(), c.reason)
	return true
}

// takes reports whether c's receiver takes connections now: it is alive
// and responsive, and serves, or was told to stop but forwards what it
// takes down a channel of its own that hands everything to a live worker.
// A receiver that refuses leaves them with the sender, which offers them
// again.
func (m *model) takes(c *modelChannel) bool {
	t := c.to
	switch {
	case c.sink:
		return true
	case t == nil || t.dead || t.hung || t.quit:
		return false
	case !t.termed:
		return true
	}
	return slices.ContainsFunc(m.chans, func(o *modelChannel) bool {
		return o.from == t && o.all && (o.sink || o.to != nil && !o.to.dead)
	})
}

// reach is where a worker's connections can go.
type reach int

const (
	reachNone   reach = iota // nowhere: they are closed at its drain deadline
	reachExempt              // a worker on the way died or hangs, or no other one is healthy
	reachLive                // to a live taker
)

// reachOf follows f's all-out channels to a live taker: a worker that
// serves, the successor, or a retired one that forwards and reaches one
// itself. Nobody can take them while no other worker is healthy, nor
// with --handover=off.
func (m *model) reachOf(f *fakeWorker, seen map[*fakeWorker]bool) reach {
	seen[f] = true
	best := reachNone
	if !m.s.cfg.HandoverOn() || !slices.ContainsFunc(m.s.survivors(), func(w *worker) bool { return w != f.w }) {
		best = reachExempt
	}
	for _, c := range m.chans {
		if c.from == f && c.all {
			best = max(best, m.reachVia(c, seen))
		}
	}
	return best
}

func (m *model) reachVia(c *modelChannel, seen map[*fakeWorker]bool) reach {
	t := c.to
	switch {
	case c.sink:
		return reachLive
	case t == nil || seen[t]:
		return reachNone
	case t.reaped && !c.orphan:
		return reachNone // the supervisor paired the sender anew
	case t.dead || t.killed || t.hung:
		return reachExempt
	case !t.termed:
		return reachLive
	}
	return m.reachOf(t, seen)
}

// checkConns: outside a full stop, a worker told to stop holds
// connections only with a way on to a live taker; and no connection
// vanishes from the model's count.
func (m *model) checkConns() {
	held := 0
	for _, f := range m.fakes {
		held += f.conns
		if m.s.stopping != 0 || !f.termed || f.dead || f.killed || f.conns == 0 {
			continue
		}
		if m.reachOf(f, map[*fakeWorker]bool{}) == reachNone {
			m.fail("pid %d holds %d connections and hands them to nobody live", f.pidv, f.conns)
		}
	}
	if held+m.lost+m.handedOn != m.opened {
		m.fail("connections: %d held + %d lost + %d handed to the successor, %d opened", held, m.lost, m.handedOn, m.opened)
	}
}

// checkClose fails if f, exiting at a drain deadline (its own or the
// supervisor's), closes connections it could have handed to a live
// taker. A hung worker hands nothing over.
func (m *model) checkClose(f *fakeWorker, why string) {
	if f.conns == 0 {
		return
	}
	m.tracef("pid %d closes %d connections (%s)", f.pidv, f.conns, why)
	if !f.hung && m.reachOf(f, map[*fakeWorker]bool{}) == reachLive {
		m.fail("pid %d closed %d connections (%s), though a live worker would take them", f.pidv, f.conns, why)
	}
}

// reapReceiver hands ev, a worker's exit, to the supervisor, and checks
// that each worker that handed everything to it is paired anew with the
// survivors (rePair), unless there are none or the supervisor stops.
func (m *model) reapReceiver(gone *fakeWorker, ev event) {
	var senders []*modelChannel
	for _, c := range m.chans {
		if c.to == gone && c.all && c.from != nil {
			senders = append(senders, c)
		}
	}
	before := len(m.chans)
	m.s.handle(ev)
	for _, c := range senders {
		if slices.ContainsFunc(m.chans[before:], func(n *modelChannel) bool { return n.from == c.from }) {
			continue
		}
		c.orphan = true
		p := c.from
		if m.s.stopping == 0 && !p.dead && !p.killed &&
			slices.ContainsFunc(m.s.survivors(), func(w *worker) bool { return w != p.w }) {
			m.fail("pid %d handed everything to pid %d, which exited, and was not paired with a survivor", p.pidv, gone.pidv)
		}
	}
}

// takeOverConns checks, when the old generation is gone, that its
// workers left no connection behind, and forgets its channels.
func (m *model) takeOverConns() {
	for _, f := range m.fakes {
		if f.conns > 0 {
			m.fail("pid %d of the old supervisor still holds %d connections", f.pidv, f.conns)
		}
	}
	m.checkEnds()
	m.chans = nil
	m.tracef("the successor holds %d connections handed over", m.handedOn)
}
