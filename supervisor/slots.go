package supervisor

import (
	"fmt"
	"time"
)

// slot is one worker position: the sockets it serves, the worker serving
// them, and the replacement starting for it during a rollout.
type slot struct {
	index   int
	sockets []int   // indexes into Supervisor.sockets
	cur     *worker // the worker serving this slot, nil while restarting
	next    *worker // a replacement not yet ready
	crashes int     // consecutive short-lived workers, for backoff
	// restartAt is when a crashed worker's replacement is due; zero if none.
	restartAt time.Time
}

type eventKind int

const (
	eventReady eventKind = iota + 1
	eventExited
	eventUpgradeReady
	eventUpgradeFailed
)

// event is what other goroutines tell the loop.
type event struct {
	kind    eventKind
	worker  *worker
	upgrade *upgrade
	err     error
}

// send delivers an event unless the loop has returned.
func (s *Supervisor) send(ev event) {
	select {
	case s.events <- ev:
	case <-s.done:
	}
}

// startSlots creates n slots and starts their workers, at startup.
func (s *Supervisor) startSlots(n int) error {
	if len(s.sockets) < n {
		// Socket activation passed fewer sockets than slots.
		if s.sockets[0].reusePort() {
			s.ensureSockets(n)
		} else {
			s.log.Info("inherited socket lacks SO_REUSEPORT; workers share it", "sockets", len(s.sockets), "workers", n)
		}
	}
	plan := assign(len(s.sockets), n)
	for i := range n {
		sl := &slot{index: i, sockets: plan[i]}
		s.slots = append(s.slots, sl)
		w, err := s.spawn(sl)
		if err != nil {
			return fmt.Errorf("%w: %w", errNoWorkerStarted, err)
		}
		sl.cur = w
	}
	return nil
}

// spawn starts a worker for sl with sl's sockets and the current config.
func (s *Supervisor) spawn(sl *slot) (*worker, error) {
	socks := make([]*socket, len(sl.sockets))
	for i, k := range sl.sockets {
		socks[i] = s.sockets[k]
	}
	cfg := s.cfg
	cfg.Workers = max(len(s.slots), 1) // the running count: TTIN/TTOU change it
	w, err := startWorker(spawnSpec{
		executable: s.opts.Executable, slot: sl.index, sockets: socks,
		config: cfg, env: s.opts.Env,
	})
	if err != nil {
		return nil, err
	}
	s.metrics.mu.Lock()
	s.metrics.live[w] = struct{}{}
	s.metrics.mu.Unlock()
	go w.readControl(s.events)
	go w.wait(s.events)
	s.log.Info("worker started", "slot", sl.index, "pid", w.pid, "sockets", sl.sockets)
	return w, nil
}

func (s *Supervisor) handle(ev event) {
	switch ev.kind {
	case eventReady:
		s.workerReady(ev.worker)
	case eventExited:
		s.workerExited(ev.worker, ev.err)
	case eventUpgradeReady, eventUpgradeFailed:
		s.upgradeEvent(ev)
	default:
		if ev.err != nil && ev.worker != nil {
			s.log.Warn("worker control channel", "slot", ev.worker.slot, "pid", ev.worker.pid, "err", ev.err)
		}
	}
}

func (s *Supervisor) workerReady(w *worker) {
	w.ready = true
	s.log.Info("worker ready", "slot", w.slot, "pid", w.pid, "after", time.Since(w.started).Round(time.Millisecond))
	if sl := s.slotOf(w); sl != nil && sl.next == w {
		old := sl.cur
		sl.cur, sl.next = w, nil
		if old != nil {
			s.retire(old, "replaced")
		}
		s.stepDone()
	}
	s.updateServing()
	if !s.ready && s.allServing() {
		s.announceReady()
	}
}

func (s *Supervisor) workerExited(w *worker, err error) {
	s.metrics.mu.Lock()
	delete(s.metrics.live, w)
	s.metrics.retired = s.metrics.retired.Add(w.lastStats())
	s.metrics.retired.Active = 0
	s.metrics.mu.Unlock()
	status := exitStatus(err)
	uptime := time.Since(w.started).Round(time.Millisecond)
	if _, ok := s.retiring[w]; ok {
		delete(s.retiring, w)
		s.log.Info("worker exited", "slot", w.slot, "pid", w.pid, "status", status, "uptime", uptime)
		return
	}
	sl := s.slotOf(w)
	if sl == nil {
		return
	}
	s.log.Warn("worker exited unexpectedly", "slot", w.slot, "pid", w.pid, "status", status, "uptime", uptime)
	if sl.next == w {
		sl.next = nil
		s.abortRollout(fmt.Sprintf("new worker for slot %d exited before it was ready (%s)", sl.index, status))
		return
	}
	sl.cur = nil
	s.updateServing()
	if s.stopping == 0 {
		s.scheduleRestart(sl, uptime)
	}
}

// scheduleRestart backs off exponentially while a slot's workers keep
// dying young; the first crash after a stable run restarts at once.
func (s *Supervisor) scheduleRestart(sl *slot, uptime time.Duration) {
	if uptime >= stableUptime {
		sl.crashes = 0
	}
	delay := time.Duration(0)
	if sl.crashes > 0 {
		delay = min(firstBackoff<<(sl.crashes-1), maxBackoff)
	}
	sl.crashes = min(sl.crashes+1, 16)
	sl.restartAt = time.Now().Add(delay)
	s.metrics.mu.Lock()
	s.metrics.restarts++
	s.metrics.mu.Unlock()
	if delay > 0 {
		s.log.Warn("worker crashing; backing off before restart", "slot", sl.index, "backoff", delay, "consecutive_crashes", sl.crashes)
	}
	if delay == 0 {
		s.restart(sl)
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
		s.scheduleRestart(sl, 0)
		return
	}
	sl.cur = w
}

func (s *Supervisor) slotOf(w *worker) *slot {
	if w.slot < len(s.slots) {
		if sl := s.slots[w.slot]; sl.cur == w || sl.next == w {
			return sl
		}
	}
	return nil
}

// retire tells a worker to drain and bounds how long it may take.
func (s *Supervisor) retire(w *worker, why string) {
	if w.draining {
		return
	}
	w.draining = true
	c := s.cfg
	s.retiring[w] = time.Now().Add(c.ShutdownTimeout + c.ReadTimeout + c.WriteTimeout + drainMargin)
	s.log.Info("worker draining", "slot", w.slot, "pid", w.pid, "reason", why)
	w.signal(sigTerm)
}

func (s *Supervisor) allServing() bool {
	for _, sl := range s.slots {
		if sl.cur == nil || !sl.cur.ready {
			return false
		}
	}
	return true
}

func (s *Supervisor) updateServing() {
	n := 0
	for _, sl := range s.slots {
		if sl.cur != nil && sl.cur.ready {
			n++
		}
	}
	s.metrics.mu.Lock()
	s.metrics.serving = n
	s.metrics.mu.Unlock()
}

func (s *Supervisor) liveWorkers() int {
	s.metrics.mu.Lock()
	defer s.metrics.mu.Unlock()
	return len(s.metrics.live)
}

// nextDeadline is the earliest time the loop must wake up by itself.
func (s *Supervisor) nextDeadline() time.Time {
	next := time.Now().Add(time.Hour)
	earlier := func(t time.Time) {
		if !t.IsZero() && t.Before(next) {
			next = t
		}
	}
	for _, sl := range s.slots {
		earlier(sl.restartAt)
		for _, w := range []*worker{sl.cur, sl.next} {
			if w != nil && !w.ready {
				earlier(w.started.Add(readyTimeout))
			}
		}
	}
	for _, t := range s.retiring {
		earlier(t)
	}
	if s.upgrade != nil {
		earlier(s.upgrade.deadline)
	}
	earlier(s.wdNext)
	return next
}

func (s *Supervisor) fireDeadlines(now time.Time) {
	for _, sl := range s.slots {
		if !sl.restartAt.IsZero() && !now.Before(sl.restartAt) {
			s.restart(sl)
		}
		for _, w := range []*worker{sl.cur, sl.next} {
			if w != nil && !w.ready && !w.draining && now.Sub(w.started) >= readyTimeout {
				s.log.Error("worker not ready in time; killing it", "slot", sl.index, "pid", w.pid, "timeout", readyTimeout)
				w.draining = true
				w.signal(sigKill)
			}
		}
	}
	for w, t := range s.retiring {
		if !now.Before(t) {
			s.log.Warn("worker still draining at its deadline; killing it", "slot", w.slot, "pid", w.pid)
			w.signal(sigKill)
			s.retiring[w] = now.Add(time.Hour)
		}
	}
	if s.upgrade != nil && !now.Before(s.upgrade.deadline) {
		s.upgradeTimedOut()
	}
	if !s.wdNext.IsZero() && !now.Before(s.wdNext) {
		s.opts.Notify("WATCHDOG=1")
		s.wdNext = now.Add(s.opts.Watchdog / 2)
	}
}
