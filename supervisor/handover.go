package supervisor

import (
	"errors"
	"fmt"
	"os"

	"github.com/camelot/lancelot/shared/control"
)

// Handovers. A worker that goes away — replaced by a reload, retired by a
// scale-down or by a binary upgrade (upgradeconns.go) — hands its open
// connections to live workers instead of draining them; a new slot's
// worker gets a fair share of the others' idle connections. The loop only
// pairs workers: it passes each side one end of a channel (see package
// handover) and the workers do the rest between themselves, so a handover
// never blocks the loop, and a failed one costs only the connections in
// flight.

// errNoHandover is startHandover's error in an environment without
// handover channels.
var errNoHandover = errors.New("handover channels not available")

// startHandover pairs from (sending) with to (receiving): it passes each
// one end of a new handover channel. For reload, upgrade and scale_down,
// from hands over every connection, at a question boundary, and must then
// be told to stop (retire); for rebalance, 1/share of its idle ones, and
// goes on serving. A worker whose control channel fails is lost; the
// handover then does not start and from drains as without one.
func (s *Supervisor) startHandover(from, to *worker, reason string, share int) error {
	if s.env.handoverPair == nil {
		return errNoHandover
	}
	send, receive, err := s.env.handoverPair()
	if err != nil {
		return err
	}
	defer send.Close()
	defer receive.Close()
	if err := s.passHandoverEnd(to, control.RoleReceive, reason, 0, receive); err != nil {
		return err
	}
	if err := s.passHandoverEnd(from, control.RoleSend, reason, share, send); err != nil {
		return err
	}
	if reason != control.ReasonRebalance {
		if from.handsTo == nil {
			from.handsTo = make(map[*worker]string)
		}
		from.handsTo[to] = reason
	}
	s.log.Info("handover started", "reason", reason, "from", from.proc.pid(), "to", to.proc.pid())
	return nil
}

// rePair gives every worker that hands its connections to gone, which
// has exited (crashed, killed, or gone before its senders were done), a
// channel to each of to: a sender keeps what its receiver refused or
// never read, and offers it to a new channel, instead of draining it on
// the old worker until --shutdown-timeout. With no healthy worker in to
// (gone was the only one), the sender waits for the next worker to be
// ready (see pairOrphans). A receiver that is only retired needs none of
// this: it forwards what it takes (see doc.go).
func (s *Supervisor) rePair(gone *worker, to []*worker) {
	for p := range s.workers {
		reason, ok := p.handsTo[gone]
		if !ok || p.killed {
			continue
		}
		delete(p.handsTo, gone)
		if !s.handOverTo(p, to, reason) && len(p.handsTo) == 0 {
			p.orphaned = reason
		}
	}
}

// pairOrphans gives w, a worker just ready, the connections of every
// retiring worker that has nobody to hand them to: its receivers all
// died (see rePair), or none was healthy when it was retired (a
// scale-down while the other workers still start; see handOverAll).
func (s *Supervisor) pairOrphans(w *worker) {
	if s.stopping != 0 || !w.healthy() {
		return
	}
	for p := range s.workers {
		if p.orphaned == "" || p.killed {
			continue
		}
		if s.handOverTo(p, []*worker{w}, p.orphaned) {
			p.orphaned = ""
		}
	}
}

// handOverTo starts a handover from p to each healthy worker of to, and
// reports whether one started.
func (s *Supervisor) handOverTo(p *worker, to []*worker, reason string) bool {
	started := false
	for _, w := range to {
		if !w.healthy() || w == p {
			continue
		}
		if err := s.startHandover(p, w, reason, 0); err != nil {
			s.log.Warn("handover not started; the worker drains what it holds", "reason", reason, "err", err)
			continue
		}
		started = true
	}
	return started
}

// passHandoverEnd gives w one end of a handover channel, in role (control.RoleSend
// or control.RoleReceive), for reason; share is a rebalance's divisor. The
// caller keeps and closes end. It is half of startHandover, for a channel
// whose other end goes elsewhere (a binary upgrade's successor passes it
// to its own worker). A worker whose control channel fails is lost.
func (s *Supervisor) passHandoverEnd(w *worker, role, reason string, share int, end *os.File) error {
	m := control.Message{Type: control.TypeHandOver, Role: role, Reason: reason, Share: share, File: end}
	if err := w.proc.send(m); err != nil {
		s.lost(w, err)
		return fmt.Errorf("handover end to worker %d: %w", w.proc.pid(), err)
	}
	return nil
}

// handOverAll makes from hand every connection to the workers in to,
// spread over them (one channel each), for reason. It reports whether
// any handover started; the caller retires from either way.
func (s *Supervisor) handOverAll(from *worker, to []*worker, reason string) bool {
	if !s.cfg.HandoverOn() || from == nil || from.draining || from.killed || !from.ready {
		return false
	}
	if !s.handOverTo(from, to, reason) {
		from.orphaned = reason // the next worker ready takes them
		return false
	}
	return true
}

// rebalance gives to, a new slot's worker, its fair share of the other
// workers' idle connections: with n healthy workers, each other one hands
// over 1/n of its own.
func (s *Supervisor) rebalance(to *worker) {
	if !s.cfg.HandoverOn() {
		return
	}
	var from []*worker
	for _, sl := range s.slots {
		if w := sl.cur; w.healthy() && w != to {
			from = append(from, w)
		}
	}
	for _, w := range from {
		if err := s.startHandover(w, to, control.ReasonRebalance, len(from)+1); err != nil {
			s.log.Warn("rebalance not started", "err", err)
		}
	}
}

// replaced acts on a rollout's new worker w being ready in its slot,
// where old served until now (nil for a new slot): old hands its
// connections to w and retires; a new slot gets its share of the others'.
func (s *Supervisor) replaced(old, w *worker) {
	if old == nil {
		s.rebalance(w)
		return
	}
	s.handOverAll(old, []*worker{w}, control.ReasonReload)
	s.retire(old, "replaced")
}

// survivors are the healthy workers of the slots left.
func (s *Supervisor) survivors() []*worker {
	var ws []*worker
	for _, sl := range s.slots {
		if sl.cur.healthy() {
			ws = append(ws, sl.cur)
		}
	}
	return ws
}
