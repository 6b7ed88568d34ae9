package worker

import (
	"errors"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/shared/control"
	"github.com/camelot/lancelot/shared/handover"
)

// Handing connections over. A sending worker's loops, which own its
// connections, each send theirs in batches into every outgoing channel
// (outgoing); a receiving worker's Adopt admits them within its limits
// and hands each to a loop (see addAdopted). A loop blocks while a batch
// is in flight: the receiver answers at once, and the connections in it
// must not be read meanwhile anyway.

// handoverRecheck is how often a loop looks again for connections that
// could not go yet: a write still blocked, a PROXY header half read.
const handoverRecheck = 10 * time.Millisecond

// maxBatchesPerTurn bounds the batches a loop sends before it serves its
// other connections again.
const maxBatchesPerTurn = 16

// handoverReasons are the values of the reason label, in the order
// loopStats counts them.
var handoverReasons = [...]string{control.ReasonReload, control.ReasonUpgrade, control.ReasonScaleDown, control.ReasonRebalance}

func handoverReasonIndex(reason string) int {
	if i := slices.Index(handoverReasons[:], reason); i >= 0 {
		return i
	}
	return 0
}

// outgoing is one channel connections are handed into.
type outgoing struct {
	s      *handover.Sender
	reason int  // index in handoverReasons
	all    bool // every connection (the worker stops); else 1/share of the idle ones
	share  int
	start  time.Time
	// loops is how many loops have not finished with it; guarded by
	// EventLoop.mu. The last one closes the channel and logs.
	loops                   int
	handed, refused, failed uint64 // guarded by EventLoop.mu
}

// loopOut is a loop's progress on an outgoing channel.
type loopOut struct {
	o      *outgoing
	budget int // connections left to send; -1: all of them
	done   bool
	// kept are the connections its receiver refused for good (a limit,
	// their state): served here, or offered to another channel. Each is
	// refused once, so they are also the count of refusals.
	kept map[*elConn]struct{}
	// retryAt: the receiver refused as stopping, which it may stop
	// doing (it was told to stop before it was told to forward); offer
	// nothing to it before then.
	retryAt        int64
	handed, failed uint64
}

// HandOver starts handing connections into s: every one (the worker is
// stopping; TERM follows) or, for a rebalance, 1/share of each loop's
// idle ones. The channel is closed, and one line logged, once every loop
// is done with it.
func (e *EventLoop) HandOver(s *handover.Sender, reason string, share int) {
	o := &outgoing{s: s, reason: handoverReasonIndex(reason), all: reason != control.ReasonRebalance, share: max(share, 1), start: time.Now()}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, l := range e.loops {
		if !l.exited {
			o.loops++
			l.pendingOuts = append(l.pendingOuts, o)
			l.wakeLocked()
		}
	}
	if o.all {
		e.forwarding++
	}
	if o.loops == 0 {
		e.finishOutgoingLocked(o)
	}
}

// finishOutgoingLocked closes o's channel and logs what went through it.
func (e *EventLoop) finishOutgoingLocked(o *outgoing) {
	o.s.Close()
	if o.all {
		e.forwarding--
		e.wakeAllLocked() // an empty loop kept for forwarding may exit now
	}
	args := []any{"reason", handoverReasons[o.reason], "handed_over", o.handed, "took", time.Since(o.start).Round(time.Millisecond)}
	if o.refused > 0 {
		args = append(args, "refused_kept_here", o.refused)
	}
	if o.failed > 0 {
		args = append(args, "failed_closed", o.failed)
		e.opts.Logger.Warn("connections handed over; some were lost with the receiver", args...)
		return
	}
	e.opts.Logger.Info("connections handed over", args...)
}

// loopDoneWith is a loop finished with lo.
func (e *EventLoop) loopDoneWith(lo *loopOut) {
	e.mu.Lock()
	defer e.mu.Unlock()
	o := lo.o
	o.handed += lo.handed
	o.refused += uint64(len(lo.kept))
	o.failed += lo.failed
	o.loops--
	if o.loops == 0 {
		e.finishOutgoingLocked(o)
	}
}

// takeOuts starts on the outgoing channels handed to l. A connection
// another receiver refused is offered to a new channel all the same.
func (l *loop) takeOuts(outs []*outgoing) {
	if len(outs) == 0 {
		return
	}
	for _, o := range outs {
		lo := loopOut{o: o, budget: -1}
		if !o.all {
			idle := 0
			for _, c := range l.conns {
				if c != nil && c.idle() {
					idle++
				}
			}
			lo.budget = idle / o.share
		}
		l.outs = append(l.outs, lo)
	}
	l.handAt = max(l.now, 1)
}

// handOver sends batches into the loop's outgoing channels, a batch to
// each in turn, until none has anything to send or the turn is over.
func (l *loop) handOver() {
	if len(l.outs) == 0 || l.handAt == 0 || l.handAt > l.now {
		return
	}
	l.handAt = 0
	more := false
	for range maxBatchesPerTurn {
		sent := false
		for i := range l.outs {
			if lo := &l.outs[i]; !lo.done && l.sendBatch(lo) {
				sent = true
			}
		}
		if !sent {
			break
		}
		more = true
	}
	l.outs = slices.DeleteFunc(l.outs, func(lo loopOut) bool {
		if lo.done {
			l.e.loopDoneWith(&lo)
		}
		return lo.done
	})
	switch {
	case len(l.outs) == 0:
	case more:
		l.handAt = max(l.now, 1) // a full turn: go on after serving the others
	case l.nconns > 0:
		l.handAt = l.now + int64(handoverRecheck)
	}
}

// canGo reports whether c may be handed over now: at a question boundary
// with every answer it is owed written, not refused by this receiver.
func (lo *loopOut) canGo(c *elConn) bool {
	if _, kept := lo.kept[c]; kept {
		return false
	}
	switch {
	case c == nil || c.stay || c.out != nil:
		return false
	case !lo.o.all:
		return c.idle()
	}
	return c.phase == phaseQuestions || len(c.in) == 0
}

// sendBatch sends one batch into lo's channel and acts on the verdicts.
// It reports whether it sent one; lo is done once its budget is spent, a
// rebalance found nothing more, or the channel broke.
func (l *loop) sendBatch(lo *loopOut) bool {
	if lo.budget == 0 {
		lo.done = true
		return false
	}
	if lo.retryAt > l.now {
		return false
	}
	var batch []handover.Conn
	var picked []*elConn
	for _, c := range l.conns {
		if !lo.canGo(c) {
			continue
		}
		hc := handover.Conn{FD: int(c.fd), Phase: uint8(c.phase), Fresh: c.fresh, Since: time.Duration(l.now - c.rsince), Input: c.in}
		if c.info != nil {
			hc.Client = c.info.client
		}
		if !handover.Fits(batch, &hc) {
			if len(batch) == 0 {
				c.stay = true // too big to carry: it drains here
				continue
			}
			break
		}
		batch, picked = append(batch, hc), append(picked, c)
		if len(batch) == lo.budget {
			break
		}
	}
	if len(batch) == 0 {
		if !lo.o.all {
			lo.done = true // nothing idle left to give
		}
		return false
	}
	verdicts, err := lo.o.s.Send(batch)
	l.now = l.clock()
	switch {
	case errors.Is(err, handover.ErrNotSent):
		lo.done = true // the connections never left: served on here
		return false
	case err != nil:
		l.e.opts.Logger.Warn("handover failed; closing the connections in flight", "connections", len(picked), "err", err)
		for _, c := range picked {
			l.letGoOf(c)
		}
		lo.failed += uint64(len(picked))
		l.stats.handFailed.Add(uint64(len(picked)))
		lo.done = true
		return false
	}
	for i, c := range picked {
		switch verdicts[i] {
		case handover.Taken:
		case handover.RefusedStopping:
			l.refusedStopping(lo)
			continue
		default:
			if lo.kept == nil {
				lo.kept = make(map[*elConn]struct{})
			}
			lo.kept[c] = struct{}{}
			l.stats.handRefused.Add(1)
			continue
		}
		l.letGoOf(c)
		lo.handed++
		l.stats.handed[lo.o.reason].Add(1)
		if lo.budget > 0 {
			lo.budget--
		}
	}
	return true
}

// refusedStopping acts on a receiver that refused a connection because
// it stops without forwarding: a rebalance gives up; a handover of every
// connection offers it again later, as the receiver may just not have
// been told yet where to forward (its TERM can overtake that message).
// If it never is, it exits, and its end with it (see ErrNotSent).
func (l *loop) refusedStopping(lo *loopOut) {
	if !lo.o.all {
		lo.done = true
		return
	}
	lo.retryAt = l.now + int64(handoverRecheck)
}

// letGoOf drops a connection another process holds now, or that a failed
// handover lost. Its registration goes first: the epoll set would keep it
// as long as any process holds the socket open.
func (l *loop) letGoOf(c *elConn) {
	fd := int(c.fd)
	unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	if l.forget(c) {
		l.stats.active.Add(-1)
		l.e.open.Add(-1)
	}
	unix.Close(fd)
}

// outsExited finishes, for a loop that exits, every channel it had not.
func (l *loop) outsExited(pending []*outgoing) {
	for i := range l.outs {
		l.e.loopDoneWith(&l.outs[i])
	}
	l.outs = nil
	for _, o := range pending {
		l.e.loopDoneWith(&loopOut{o: o})
	}
}
