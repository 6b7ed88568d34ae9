package supervisor

import (
	"errors"
	"os"
	"syscall"
	"time"

	"github.com/camelot/lancelot/shared/control"
)

// A hung worker is asked for every goroutine's stack before it is killed,
// so that its death leaves a trace: SIGABRT, which a worker does not catch
// (it catches QUIT: close connections now), and on which the Go runtime
// writes every goroutine's stack to stderr (the worker's stderr is the
// supervisor's: the journal under systemd) and exits with status 2, as for
// an uncaught SIGQUIT. That is with the default GOTRACEBACK (unset, or
// "single"): checked with go1.26, every goroutine is printed, not only the
// one the signal landed on; GOTRACEBACK=none would print none. A worker
// that cannot write (stopped, or its stderr blocked) is SIGKILLed
// stackDumpGrace later regardless.
const (
	sigAbort       = syscall.SIGABRT
	stackDumpGrace = time.Second
)

// workerHeartbeat is one worker's heartbeat state.
type workerHeartbeat struct {
	seq      uint64    // the last request sent
	sent     time.Time // when it was sent
	answered time.Time // the last answer, or when the worker became ready
	// late: the worker missed an answer (none within an interval of the
	// request). Its sockets are lent until it answers again; it keeps them
	// meanwhile, so nothing is lost if it was only slow.
	late bool
}

// heartbeats is the supervisor's side of them all.
type heartbeats struct {
	// last is when the loop last checked them. A loop that did not run for
	// a while (the supervisor stopped or starved) could not hear answers
	// either, so it forgives the silence it caused.
	last time.Time
}

// Heartbeat intervals. A worker is asked every heartbeatEvery, and found
// late when an answer has not come by the next request: a worker that
// stops right after an answer has its sockets lent within two intervals,
// one second, so that the clients the kernel keeps hashing to its sockets
// wait at most that. A late worker is asked every lateEvery, so that one
// that was only slow gets its sockets back (the loans end) at once.
const (
	heartbeatEvery = 500 * time.Millisecond
	lateEvery      = 250 * time.Millisecond
)

// heartbeatInterval is how often w is asked: at most every heartbeatEvery
// (lateEvery while it is late), and four times per --worker-timeout, so a
// worker is killed between D and D + interval after its loops stopped.
func (s *Supervisor) heartbeatInterval(w *worker) time.Duration {
	every := heartbeatEvery
	if w.hb.late {
		every = lateEvery
	}
	return min(s.cfg.WorkerTimeout/4, every)
}

// workerAlive records a heartbeat answer. A late worker that answers is
// on time again: reconcile ends the loans of its sockets.
func (s *Supervisor) workerAlive(w *worker, seq uint64) {
	if seq != w.hb.seq {
		return
	}
	now := s.env.now()
	if w.hb.late && w.healthy() {
		s.log.Info("worker answers its heartbeat again; it serves its own sockets, their loans end",
			"slot", w.slot, "pid", w.proc.pid(), "silent_for", now.Sub(w.hb.answered).Round(time.Millisecond))
	}
	w.hb.answered, w.hb.late = now, false
}

// checkHeartbeats asks the healthy workers that are due, marks late those
// that missed an answer (reconcile lends their sockets), and kills those
// silent for --worker-timeout. Only a worker whose every serving loop
// stopped going around stays silent (worker.EventLoop.Alive): a loop that
// is merely busy still answers between two batches of events.
func (s *Supervisor) checkHeartbeats(now time.Time) {
	timeout := s.cfg.WorkerTimeout
	if timeout <= 0 || s.stopping != 0 {
		return
	}
	if !s.hb.last.IsZero() && now.Sub(s.hb.last) > timeout/2 {
		s.log.Warn("supervisor loop was paused; restarting the workers' heartbeat clocks", "paused", now.Sub(s.hb.last).Round(time.Millisecond))
		for w := range s.workers {
			w.hb.answered, w.hb.late = now, false
		}
	}
	s.hb.last = now
	for _, sl := range s.slots {
		w := sl.cur
		if !w.healthy() {
			continue
		}
		if silent := now.Sub(w.hb.answered); silent >= timeout {
			s.log.Error("worker missed its heartbeat; asked for a stack dump, killing it (its sockets are lent meanwhile)",
				"slot", w.slot, "pid", w.proc.pid(), "silent_for", silent.Round(time.Millisecond), "worker_timeout", timeout,
				"stack_dump", "SIGABRT: every goroutine's stack on the worker's stderr (the journal under systemd)",
				"sigkill_in", stackDumpGrace)
			s.metrics.countTimeout()
			s.abort(w)
			continue
		}
		s.checkLate(w, now)
		if now.Sub(w.hb.sent) >= s.heartbeatInterval(w) {
			w.hb.seq++
			w.hb.sent = now
			s.askAlive(w)
		}
	}
}

// askAlive sends w a heartbeat request. A channel that stays full is no
// proof of death: a worker starved of CPU for a moment stops reading it
// too, and it is the heartbeat's own job to tell a stall from a hang, at
// --worker-timeout. So the request is just missed, as when the worker
// does not answer it; a channel that broke loses the worker.
func (s *Supervisor) askAlive(w *worker) {
	err := w.proc.send(control.Message{Type: control.TypeAliveRequest, Seq: w.hb.seq})
	switch {
	case err == nil:
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.log.Debug("heartbeat request not sent: the worker's channel is full", "slot", w.slot, "pid", w.proc.pid())
	default:
		s.lost(w, err)
	}
}

// checkLate marks w late when its last request has gone unanswered for an
// interval.
func (s *Supervisor) checkLate(w *worker, now time.Time) {
	if w.hb.late || !w.hb.sent.After(w.hb.answered) || now.Sub(w.hb.sent) < s.heartbeatInterval(w) {
		return
	}
	w.hb.late = true
	s.log.Warn("worker missed a heartbeat answer; lending its sockets to another worker until it answers",
		"slot", w.slot, "pid", w.proc.pid(), "silent_for", now.Sub(w.hb.answered).Round(time.Millisecond),
		"killed_in", (s.cfg.WorkerTimeout - now.Sub(w.hb.answered)).Round(time.Millisecond))
}

// abort asks a hung worker for its stacks (sigAbort), and has it killed
// stackDumpGrace later if it has not exited by then (fireDeadlines). It
// counts as killed at once: it no longer accepts, and its sockets are lent.
func (s *Supervisor) abort(w *worker) {
	w.killed = true
	w.killAt = s.env.now().Add(stackDumpGrace)
	clear(w.serving)
	s.metrics.countStackDump()
	w.proc.signal(sigAbort)
}

// heartbeatDeadline is when checkHeartbeats next has something to do.
func (s *Supervisor) heartbeatDeadline() time.Time {
	var next time.Time
	if s.cfg.WorkerTimeout <= 0 || s.stopping != 0 {
		return next
	}
	for _, sl := range s.slots {
		if w := sl.cur; w.healthy() {
			next = earliest(next, w.hb.sent.Add(s.heartbeatInterval(w)))
			next = earliest(next, w.hb.answered.Add(s.cfg.WorkerTimeout))
		}
	}
	return next
}

// earliest returns the earlier of a and b, ignoring zero times.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
