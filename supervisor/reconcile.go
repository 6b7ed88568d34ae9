package supervisor

import (
	"slices"

	"github.com/camelot/lancelot/shared/control"
)

// reconcile makes every socket served, after whatever just happened:
//
//   - A socket whose home slot has a healthy worker is served by that
//     worker (a socket re-homed by TTOU is lent to it), and by no other: a
//     worker that had it on loan gives it back.
//   - A socket whose home slots have no healthy worker (crashed, backing
//     off, hung and killed, not ready yet, retired) is lent to the healthy
//     worker serving the fewest sockets, unless a healthy worker serves it
//     already.
//
// So a socket is without a worker only while no worker at all is healthy,
// and for the moment it takes a lent socket to reach its new worker. The
// supervisor's own descriptor keeps every socket open meanwhile: clients
// queue, they are never reset. While stopping, nothing is lent: the
// workers are draining.
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
				if !w.serving[k] && !s.lend(w, k, "re-homed") {
					return true
				}
			}
			for _, sl := range s.slots {
				if w := sl.cur; w.healthy() && w.serving[k] && !slices.Contains(owners[k], w) && !s.reclaim(w, k) {
					return true
				}
			}
			continue
		}
		if s.servedByHealthy(k) {
			continue
		}
		if w := s.leastLoaded(); w != nil && !s.lend(w, k, "its workers are down") {
			return true
		}
	}
	return false
}

// owners returns, for each socket id, the healthy workers of its home
// slots.
func (s *Supervisor) owners() map[int][]*worker {
	owners := make(map[int][]*worker, len(s.sockets))
	for _, sl := range s.slots {
		if !sl.cur.healthy() {
			continue
		}
		for _, k := range sl.home {
			owners[k] = append(owners[k], sl.cur)
		}
	}
	return owners
}

func (s *Supervisor) servedByHealthy(k int) bool {
	for _, sl := range s.slots {
		if sl.cur.healthy() && sl.cur.serving[k] {
			return true
		}
	}
	return false
}

// leastLoaded is the healthy worker serving the fewest sockets, the lowest
// slot on a tie; nil when none is healthy.
func (s *Supervisor) leastLoaded() *worker {
	var best *worker
	for _, sl := range s.slots {
		if w := sl.cur; w.healthy() && (best == nil || len(w.serving) < len(best.serving)) {
			best = w
		}
	}
	return best
}

// lend makes w accept on socket k too. It reports false when w was written
// off instead (see lost).
func (s *Supervisor) lend(w *worker, k int, why string) bool {
	f, err := s.socket(k).file()
	if err != nil {
		s.log.Error("lend socket", "socket", k, "err", err)
		return true // out of descriptors: the next event tries again
	}
	defer f.Close()
	if err := w.proc.send(control.Message{Type: control.TypeLend, Socket: k, File: f}); err != nil {
		s.lost(w, err)
		return false
	}
	w.serving[k] = true
	s.log.Info("socket lent", "socket", k, "to_slot", w.slot, "pid", w.proc.pid(), "reason", why)
	return true
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
