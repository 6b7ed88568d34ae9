package supervisor

import (
	"slices"
	"time"

	"github.com/camelot/lancelot/shared/control"
)

// reconcile makes every socket served, after whatever just happened:
//
//   - A socket whose home slot has an accepting worker (ready, not told to
//     stop, answering its heartbeats) is served by that worker (a socket
//     re-homed by TTOU or added by a reload is lent to it), and by no
//     other accepting worker: one that had it on loan gives it back.
//   - A socket whose home slots have no accepting worker (crashed, backing
//     off, hung and killed, late with a heartbeat answer, not ready yet,
//     retired) is lent to the accepting worker serving the fewest sockets,
//     unless an accepting worker serves it already. Before the service is
//     first ready, a socket whose worker is still starting (and has not
//     failed yet) waits for it instead: every start would otherwise lend
//     each socket to whichever worker is ready first, only to take it back
//     a moment later.
//
// So a socket is without an accepting worker only while no worker at all
// accepts, and for the moment it takes a lent socket to reach its new
// worker. The supervisor's own descriptor keeps every socket open
// meanwhile: clients queue, they are never reset. While stopping, nothing
// is lent: the workers are draining.
func (s *Supervisor) reconcile() {
	if s.stopping != 0 || len(s.slots) == 0 {
		return
	}
	// A lend to a worker whose control channel broke fails, and the worker
	// is written off (see lost): go round again, so the socket goes to
	// another one. Each round writes off a worker, so this ends.
	for s.reconcileOnce() {
	}
}

// reconcileOnce is one pass over the sockets; it reports whether a worker
// was written off on the way.
func (s *Supervisor) reconcileOnce() (again bool) {
	owners := s.owners()
	for _, sock := range slices.Clone(s.sockets) {
		k := sock.id
		if sock.retiring {
			if !s.retireSocket(sock) {
				return true
			}
			continue
		}
		if len(owners[k]) > 0 {
			for _, w := range owners[k] {
				if !w.serving[k] && s.lend(w, k, lendRehomed) == lendLost {
					return true
				}
			}
			for _, sl := range s.slots {
				if w := sl.cur; w.accepting() && w.serving[k] && !slices.Contains(owners[k], w) && !s.reclaim(w, k) {
					return true
				}
			}
			continue
		}
		if s.servedByAccepting(k) || s.homeStarting(k) {
			continue
		}
		if w := s.leastLoaded(); w != nil && s.lend(w, k, s.lendReason(k)) == lendLost {
			return true
		}
	}
	return false
}

// Why a socket is lent: the values of lancelot_sockets_lent_total's reason
// label (documented in docs/reference.md).
const (
	lendLate    = "late"    // its worker missed a heartbeat answer
	lendDown    = "down"    // its worker crashed, was killed, or is restarting
	lendRehomed = "rehomed" // its home moved: a new address, or a slot removed
	lendRetired = "retired" // its address was removed: a worker takes its queue
)

// lendReason says why socket k, whose home workers do not accept, is lent.
func (s *Supervisor) lendReason(k int) string {
	for _, sl := range s.slots {
		if slices.Contains(sl.home, k) && sl.cur.healthy() && sl.cur.hb.late {
			return lendLate
		}
	}
	return lendDown
}

// owners returns, for each socket id, the accepting workers of its home
// slots.
func (s *Supervisor) owners() map[int][]*worker {
	owners := make(map[int][]*worker, len(s.sockets))
	for _, sl := range s.slots {
		if !sl.cur.accepting() {
			continue
		}
		for _, k := range sl.home {
			owners[k] = append(owners[k], sl.cur)
		}
	}
	return owners
}

func (s *Supervisor) servedByAccepting(k int) bool {
	for _, sl := range s.slots {
		if sl.cur.accepting() && sl.cur.serving[k] {
			return true
		}
	}
	return false
}

// homeStarting reports whether socket k waits for its home worker's first
// start: the service was never ready yet, and a worker of one of its home
// slots is starting without having failed before (see reconcile).
func (s *Supervisor) homeStarting(k int) bool {
	if s.ready {
		return false
	}
	for _, sl := range s.slots {
		w := sl.cur
		if w == nil {
			w = sl.next // a slot added before the start was over
		}
		if slices.Contains(sl.home, k) && w != nil && !w.ready && !w.draining && !w.killed && sl.crashes == 0 {
			return true
		}
	}
	return false
}

// leastLoaded is the accepting worker serving the fewest sockets, the
// lowest slot on a tie; nil when none accepts.
func (s *Supervisor) leastLoaded() *worker {
	var best *worker
	for _, sl := range s.slots {
		if w := sl.cur; w.accepting() && (best == nil || len(w.serving) < len(best.serving)) {
			best = w
		}
	}
	return best
}

// lendRetry is how soon a lend that failed for want of descriptors is
// tried again when no other event comes first.
const lendRetry = 100 * time.Millisecond

// lendResult is how a lend ended.
type lendResult int

const (
	lendDone   lendResult = iota // the worker accepts on the socket too
	lendFailed                   // no duplicate to send (out of descriptors): the next event tries again
	lendLost                     // the worker's control channel broke: it was written off (see lost)
)

// lend makes w accept on socket k too, for the reason why (one of the
// lend* constants).
func (s *Supervisor) lend(w *worker, k int, why string) lendResult {
	f, err := s.socket(k).file()
	if err != nil {
		s.log.Error("lend socket", "socket", k, "to_slot", w.slot, "reason", why, "err", err)
		s.lendRetryAt = s.env.now().Add(lendRetry)
		return lendFailed
	}
	defer f.Close()
	if err := w.proc.send(control.Message{Type: control.TypeLend, Socket: k, File: f}); err != nil {
		s.lost(w, err)
		return lendLost
	}
	w.serving[k] = true
	s.metrics.countLent(why)
	s.log.Info("socket lent", "socket", k, "to_slot", w.slot, "pid", w.proc.pid(), "reason", why)
	return lendDone
}

// reclaim makes w stop accepting on socket k; its home worker serves it.
// It reports false when w was written off instead (see lost).
func (s *Supervisor) reclaim(w *worker, k int) bool {
	if err := w.proc.send(control.Message{Type: control.TypeReclaim, Socket: k}); err != nil {
		s.lost(w, err)
		return false
	}
	delete(w.serving, k)
	s.log.Info("socket taken back", "socket", k, "from_slot", w.slot, "pid", w.proc.pid())
	return true
}

// lost writes off a worker whose control channel broke: it is dead, or
// will be (a worker exits when its channel closes), and whatever it was
// told since is lost. Killing it makes sure; its exit event follows.
func (s *Supervisor) lost(w *worker, err error) {
	s.log.Warn("worker's control channel broke; killing it", "slot", w.slot, "pid", w.proc.pid(), "err", err)
	s.kill(w)
}
