package supervisor

import (
	"fmt"
	"slices"
	"syscall"
	"time"

	"github.com/camelot/lancelot/shared/handoff"
)

// slot is one worker position: the sockets it is home to, the worker
// serving them, and the replacement starting for it during a rollout.
type slot struct {
	index int
	home  []int   // ids of the sockets this slot's worker starts with
	cur   *worker // the worker of this slot; nil while restarting
	next  *worker // a replacement not yet ready
	// crashes counts consecutive short-lived workers, for backoff;
	// restartAt is when a crashed worker's replacement is due (zero if
	// none is); wasReady: the slot's last worker had become ready before
	// it died (a failed start clears it), which exempts the slot from its
	// backoff while no worker serves (see restartDue).
	crashes   int
	restartAt time.Time
	wasReady  bool
}

// worker is one worker process as the loop sees it.
type worker struct {
	proc    workerProc
	slot    int
	started time.Time
	ready   bool
	version string // its release, as it said when ready
	// draining: told to stop (retired, or the supervisor stops); killed:
	// sent SIGKILL. Either way it no longer accepts.
	draining, killed bool
	// drainBy is when a draining worker is killed if still alive;
	// killAt, when a hung worker asked for its stacks is (see abort).
	drainBy, killAt time.Time
	// serving are the sockets it accepts on: those it started with, plus
	// those lent to it, minus those taken back.
	serving map[int]bool
	// hb is its heartbeat state.
	hb workerHeartbeat
	// handsTo are the workers it hands every connection to (reload,
	// scale_down), with the reason: if one of them exits first, it gets
	// a channel to the survivors instead (see rePair).
	handsTo map[*worker]string
	// orphaned is the reason of a handover that has no live receiver:
	// its receivers all died, or none was healthy when it was retired.
	// The next worker ready gets a channel from it (see pairOrphans).
	orphaned string
}

// healthy reports whether w accepts on its sockets: ready, and neither
// told to stop nor killed.
func (w *worker) healthy() bool {
	return w != nil && w.ready && !w.draining && !w.killed
}

// accepting reports whether w can be counted on to accept now: healthy,
// and not late with a heartbeat answer. Sockets are lent to accepting
// workers only, and a late worker's own sockets are lent too.
func (w *worker) accepting() bool {
	return w.healthy() && !w.hb.late
}

type eventKind int

const (
	eventReady           eventKind = iota + 1 // a worker accepts on its sockets
	eventAlive                                // a worker answered heartbeat seq
	eventExited                               // a worker was reaped
	eventControlError                         // a worker's control channel broke
	eventSuccessorReport                      // the upgrade's new supervisor said something
	eventSuccessorFailed                      // its channel ended, or it exited
	eventVerdict                              // the predecessor answered our ready
	eventPassedOn                             // the predecessor passed its waiting requests on
)

// event is what other goroutines tell the loop.
type event struct {
	kind      eventKind
	worker    *worker
	successor successorProc
	report    handoff.Report
	version   string // a ready worker's release
	seq       uint64
	sigs      []syscall.Signal // requests passed on
	err       error
}

func (s *Supervisor) handle(ev event) {
	switch ev.kind {
	case eventReady:
		ev.worker.version = ev.version
		s.workerReady(ev.worker)
	case eventAlive:
		s.workerAlive(ev.worker, ev.seq)
	case eventExited:
		s.workerExited(ev.worker, ev.err)
	case eventControlError:
		s.log.Warn("worker control channel", "slot", ev.worker.slot, "pid", ev.worker.proc.pid(), "err", ev.err)
	case eventSuccessorReport:
		if u := s.upgrade; u != nil && ev.successor == u.proc {
			s.successorReport(u, ev.report)
		}
	case eventSuccessorFailed:
		s.successorFailed(s.upgrade, ev.successor, ev.err)
	case eventVerdict:
		if s.awaitingVerdict {
			s.verdictEvent(ev.err)
		}
	case eventPassedOn:
		s.passedOn(ev.sigs, ev.err)
	}
}

// rehome gives every socket a home slot, address by address (see assign),
// so that every slot is home to a socket of each address; called whenever
// the number of slots or sockets changes.
func (s *Supervisor) rehome() {
	for _, sl := range s.slots {
		sl.home = nil
	}
	addrs, groups := s.addrGroups()
	for _, addr := range addrs {
		ids := groups[addr]
		for i, picks := range assign(len(ids), len(s.slots)) {
			for _, j := range picks {
				s.slots[i].home = append(s.slots[i].home, ids[j])
			}
		}
	}
}

// ensureSockets binds, for a new slot, a socket of each address that has
// fewer sockets than slots and that more can join. Otherwise new slots
// share the existing sockets.
func (s *Supervisor) ensureSockets() {
	addrs, _ := s.addrGroups()
	for _, addr := range addrs {
		// Read the groups again: an IPv6-only wildcard's bind also adds
		// its IPv4 companion's socket (see bindSocket).
		_, groups := s.addrGroups()
		first := s.socket(groups[addr][0])
		if len(groups[addr]) >= len(s.slots) || !first.joinable() {
			continue
		}
		socks, err := s.env.bind(addr)
		if err != nil {
			s.log.Warn("cannot add a listening socket; new workers share the existing ones", "addr", addr, "err", err)
			continue
		}
		for _, sock := range socks {
			s.addSocket(sock)
		}
	}
}

// spawn starts a worker for sl with sl's home sockets and the current
// configuration.
func (s *Supervisor) spawn(sl *slot) (*worker, error) {
	socks := make([]*socket, len(sl.home))
	for i, k := range sl.home {
		socks[i] = s.socket(k)
	}
	cfg := s.cfg
	cfg.Workers = len(s.slots) // the running count: workers split the CPUs by it
	w := &worker{slot: sl.index, started: s.env.now(), serving: make(map[int]bool)}
	proc, err := s.env.startWorker(w, workerSpec{slot: sl.index, sockets: socks, config: cfg})
	if err != nil {
		return nil, err
	}
	w.proc = proc
	for _, k := range sl.home {
		w.serving[k] = true
	}
	s.workers[w] = struct{}{}
	s.metrics.add(w)
	s.log.Info("worker started", "slot", sl.index, "pid", proc.pid(), "sockets", sl.home)
	return w, nil
}

func (s *Supervisor) workerReady(w *worker) {
	if w.draining || w.killed {
		return
	}
	w.ready = true
	w.hb = workerHeartbeat{answered: s.env.now()} // silent from now on counts
	s.log.Info("worker ready", "slot", w.slot, "pid", w.proc.pid(), "after", s.env.now().Sub(w.started).Round(time.Millisecond))
	s.pairOrphans(w)
	if sl := s.slotOf(w); sl != nil && sl.next == w {
		old := sl.cur
		sl.cur, sl.next = w, nil
		s.replaced(old, w)
		s.stepDone()
	}
	if !s.ready && s.allServing() {
		s.announceReady()
	}
}

func (s *Supervisor) workerExited(w *worker, err error) {
	delete(s.workers, w)
	s.metrics.remove(w)
	if s.stopping == 0 {
		s.rePair(w, s.survivors())
	}
	status := exitStatus(err)
	uptime := s.env.now().Sub(w.started).Round(time.Millisecond)
	sl := s.slotOf(w)
	if sl == nil || s.stopping != 0 {
		s.log.Info("worker exited", "slot", w.slot, "pid", w.proc.pid(), "status", status, "uptime", uptime)
		if sl != nil && sl.cur == w {
			sl.cur = nil
		}
		if sl != nil && sl.next == w {
			sl.next = nil
		}
		return
	}
	s.log.Warn("worker exited unexpectedly", "slot", w.slot, "pid", w.proc.pid(), "status", status, "uptime", uptime)
	if sl.next == w {
		sl.next = nil
		if s.restartStep(sl, err) {
			return
		}
		s.abortRollout(fmt.Sprintf("new worker for slot %d exited before it was ready (%s)", sl.index, status))
		return
	}
	sl.cur = nil
	sl.wasReady = w.ready
	s.scheduleRestart(sl, uptime)
}

// scheduleRestart backs off exponentially while a slot's workers keep
// dying young; the first crash after a stable run restarts at once. The
// backoff protects the machine, and costs clients nothing while another
// worker serves the slot's sockets. When none does, a slot whose worker
// had become ready restarts at once: waiting would leave every socket
// without a worker for the whole backoff. A worker that dies before it is
// ready gains nothing from haste, so its slot still backs off.
func (s *Supervisor) scheduleRestart(sl *slot, uptime time.Duration) {
	if uptime >= stableUptime {
		sl.crashes = 0
	}
	delay := time.Duration(0)
	if sl.crashes > 0 && !s.nobodyServes(sl) {
		delay = min(firstBackoff<<(sl.crashes-1), maxBackoff)
	}
	sl.crashes = min(sl.crashes+1, 16)
	sl.restartAt = s.env.now().Add(delay)
	s.metrics.countRestart(sl.index)
	switch {
	case delay > 0:
		s.log.Warn("worker crashing; backing off before restart (its sockets are lent meanwhile)",
			"slot", sl.index, "backoff", delay, "consecutive_crashes", sl.crashes)
		return
	case sl.crashes > 1:
		s.log.Warn("worker crashing, but no other worker serves; restarting it without backoff",
			"slot", sl.index, "consecutive_crashes", sl.crashes)
	}
	s.restart(sl)
}

// nobodyServes reports whether sl may skip its backoff: its last worker
// had become ready, and no worker is healthy now, so nobody can be lent
// its sockets.
func (s *Supervisor) nobodyServes(sl *slot) bool {
	if !sl.wasReady {
		return false
	}
	for _, other := range s.slots {
		if other.cur.healthy() {
			return false
		}
	}
	return true
}

// restartDue restarts the slots whose backoff is over, and those that may
// skip it now (nobodyServes): a slot already backing off when the last
// healthy worker stops serving restarts at once too, since from then on
// its sockets have nobody, and whichever restarted worker is ready first
// serves every socket.
func (s *Supervisor) restartDue(now time.Time) {
	for _, sl := range s.slots {
		if !sl.restartAt.IsZero() && (!now.Before(sl.restartAt) || s.nobodyServes(sl)) {
			if now.Before(sl.restartAt) {
				s.log.Warn("no worker serves; restarting a crashing worker without waiting out its backoff",
					"slot", sl.index, "backoff_left", sl.restartAt.Sub(now).Round(time.Millisecond))
			}
			s.restart(sl)
		}
	}
}

func (s *Supervisor) restart(sl *slot) {
	sl.restartAt = time.Time{}
	if sl.cur != nil || sl.next != nil || s.stopping != 0 {
		return
	}
	w, err := s.spawn(sl)
	if err != nil {
		s.log.Error("restart worker", "slot", sl.index, "err", err)
		sl.wasReady = false // a start that fails again and again backs off
		s.scheduleRestart(sl, 0)
		return
	}
	sl.cur = w
}

// slotOf returns the slot w is the current or next worker of, if any.
func (s *Supervisor) slotOf(w *worker) *slot {
	if w.slot < len(s.slots) {
		if sl := s.slots[w.slot]; sl.cur == w || sl.next == w {
			return sl
		}
	}
	return nil
}

// retire tells a worker to drain, and bounds how long it may take. It
// stops accepting on every socket: the supervisor lends them elsewhere.
func (s *Supervisor) retire(w *worker, why string) {
	if w.draining || w.killed {
		return
	}
	w.draining = true
	clear(w.serving)
	c := s.cfg
	w.drainBy = s.env.now().Add(c.ShutdownTimeout + c.ReadTimeout + c.WriteTimeout + drainMargin)
	s.log.Info("worker draining", "slot", w.slot, "pid", w.proc.pid(), "reason", why)
	w.proc.signal(sigTerm)
}

// kill ends w at once; its exit event follows.
func (s *Supervisor) kill(w *worker) {
	w.killed = true
	w.killAt = time.Time{}
	clear(w.serving)
	w.proc.signal(sigKill)
}

func (s *Supervisor) allServing() bool {
	for _, sl := range s.slots {
		if !sl.cur.healthy() {
			return false
		}
	}
	return true
}

// liveWorkers returns every worker not yet reaped, in a stable order.
func (s *Supervisor) liveWorkers() []*worker {
	ws := make([]*worker, 0, len(s.workers))
	for w := range s.workers {
		ws = append(ws, w)
	}
	slices.SortFunc(ws, func(a, b *worker) int {
		if c := a.started.Compare(b.started); c != 0 {
			return c
		}
		return a.proc.pid() - b.proc.pid()
	})
	return ws
}
