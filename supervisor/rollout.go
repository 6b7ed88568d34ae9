package supervisor

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/shared/config"
	"github.com/camelot/lancelot/shared/control"
)

// rollout is a sequence of steps that moves the slots to a new shape (HUP,
// TTIN, TTOU), one worker at a time: a step that starts a worker waits for
// it to be ready before the next step runs, and a worker is retired only
// after its replacement is ready.
type rollout struct {
	name     string
	steps    []step
	current  step    // the step running
	inFlight *worker // the new worker it waits for
	started  time.Time
	replies  []chan error // Reload calls waiting for the outcome
}

// reply tells the Reload calls waiting for r how it ended.
func (r *rollout) reply(err error) {
	for _, c := range r.replies {
		c <- err
	}
	r.replies = nil
}

type stepKind int

const (
	stepRemove  stepKind = iota + 1 // retire the last slot's worker and drop the slot
	stepReplace                     // start a new worker for an existing slot
	stepAdd                         // add a slot and start its worker
)

type step struct {
	kind stepKind
	slot int
	// restarted: its new worker died of a HUP and was started again.
	restarted bool
}

func (s *Supervisor) handleRequest(req request) {
	switch req.kind {
	case requestSignal:
		s.received[signalName(req.sig)]++
		s.log.Info("signal received", "signal", signalName(req.sig), "pid", os.Getpid())
	case requestReload:
		s.received["reload"]++
		s.log.Info("reload requested", "pid", os.Getpid())
	case requestUpgrade:
		s.received["upgrade"]++
		s.log.Info("binary upgrade requested", "pid", os.Getpid())
	default:
		return // only converge makes the others, queued directly
	}
	switch req.sig {
	case syscall.SIGTERM, syscall.SIGINT:
		s.leave()
	case syscall.SIGQUIT:
		s.stop(syscall.SIGQUIT)
	case syscall.SIGUSR2:
		s.startUpgrade(req.reply)
	case syscall.SIGHUP, syscall.SIGTTIN, syscall.SIGTTOU:
		if s.leaving() {
			s.failRequests([]request{req}, "supervisor stopping")
			return
		}
		s.requests = append(s.requests, req)
		s.nextRollout()
	}
}

// nextRollout starts the next queued request when none is running. While a
// binary upgrade is in flight requests wait: the successor started with
// this supervisor's counts, so they are its to carry out once it takes over
// (see successorEvent), or ours again if it fails.
func (s *Supervisor) nextRollout() {
	for s.rollout == nil && len(s.requests) > 0 && !s.leaving() && s.upgrade == nil && !s.upgradeDue {
		req := s.requests[0]
		s.requests = s.requests[1:]
		r, err := s.plan(req)
		if req.reply != nil && r == nil {
			req.reply <- err
		}
		if r != nil {
			if req.reply != nil {
				r.replies = append(r.replies, req.reply)
			}
			s.rollout = r
			s.log.Info("rollout starting", "rollout", r.name, "steps", len(r.steps))
			s.opts.Notify("STATUS=" + r.name + " in progress")
			s.runSteps()
		}
	}
}

// plan turns a request into steps that bring the slots to the running
// count it asks for; nil and why when there is nothing to do.
func (s *Supervisor) plan(req request) (*rollout, error) {
	if req.kind == requestConverge {
		return s.planShape("converge", false), nil
	}
	switch req.sig {
	case syscall.SIGHUP:
		s.opts.Notify(reloadingState())
		if err := s.reloadConfig(); err != nil {
			s.opts.Notify("READY=1\nSTATUS=reload failed; still serving the previous configuration")
			s.metrics.countReload(false)
			return nil, err
		}
		return s.planShape("reload", true), nil
	case syscall.SIGTTIN:
		if s.running >= config.MaxWorkers {
			s.log.Warn("TTIN refused: at the worker limit", "workers", s.running)
			return nil, nil
		}
		s.running++
		return s.planShape("scale up", false), nil
	case syscall.SIGTTOU:
		if s.running <= 1 {
			s.log.Warn("TTOU refused: never fewer than one worker")
			return nil, nil
		}
		s.running--
		return s.planShape("scale down", false), nil
	}
	return nil, nil
}

// Retries of a running count a rollout could not reach back off from
// convergeFirst to convergeMax.
const (
	convergeFirst = time.Second
	convergeMax   = 30 * time.Second
)

// scheduleConverge arranges, after a rollout that left fewer or more slots
// than the running count asks for, for another try later: the count is
// what the operator asked for, and a worker that could not start a moment
// ago (out of memory, descriptors) may start now. TTOU or a HUP that sets
// the count meanwhile make the try moot.
func (s *Supervisor) scheduleConverge() {
	if len(s.slots) == s.running || s.leaving() {
		s.convergeBackoff = 0
		return
	}
	s.convergeBackoff = min(max(2*s.convergeBackoff, convergeFirst), convergeMax)
	s.convergeAt = s.env.now().Add(s.convergeBackoff)
	s.log.Warn("fewer or more workers than asked for; trying again later",
		"workers", len(s.slots), "running", s.running, "in", s.convergeBackoff)
}

// converge queues the try scheduleConverge arranged.
func (s *Supervisor) converge() {
	s.convergeAt = time.Time{}
	if len(s.slots) != s.running && !s.leaving() {
		s.requests = append(s.requests, request{kind: requestConverge})
		s.nextRollout()
	}
}

// reloadConfig re-reads the configuration for HUP. The running count
// (TTIN/TTOU included) stays unless the configured count itself changed.
func (s *Supervisor) reloadConfig() error {
	if s.opts.Reload == nil {
		return nil
	}
	cfg, err := s.opts.Reload()
	if err != nil {
		s.log.Error("reload: configuration rejected; keeping the running one", "err", err)
		return fmt.Errorf("configuration rejected: %w", err)
	}
	if err := s.reloadListen(cfg); err != nil {
		s.log.Error("reload: configuration rejected; keeping the running one", "err", err)
		return fmt.Errorf("configuration rejected: %w", err)
	}
	if cfg.Workers != s.cfg.Workers {
		s.running = cfg.Workers
	}
	s.cfg = cfg
	s.log.Info("reload: configuration read", "workers", s.running, "configured", cfg.Workers)
	return nil
}

// reloadListen opens and closes addresses as the reloaded configuration
// lists them. Socket-activated sockets are the socket unit's to change.
func (s *Supervisor) reloadListen(cfg config.Config) error {
	if !s.socketActivated() {
		return s.applyListen(listenList(cfg))
	}
	s.keepActivatedAddrs(listenList(cfg))
	return nil
}

// reloadingState is the notification for Type=notify-reload: systemd wants
// RELOADING=1 together with the CLOCK_MONOTONIC time in microseconds.
func reloadingState() string {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", ts.Nano()/1000)
}

// planShape moves from the current slots to s.running slots: first the
// slots to remove (their sockets are lent to the survivors at once), then,
// for a reload, a new worker for every surviving slot, then the slots to
// add. Each new worker starts with its slot's home sockets at that moment.
func (s *Supervisor) planShape(name string, replaceAll bool) *rollout {
	n, target := len(s.slots), s.running
	r := &rollout{name: name, started: s.env.now()}
	for j := n - 1; j >= target; j-- {
		r.steps = append(r.steps, step{kind: stepRemove, slot: j})
	}
	if replaceAll {
		for j := range min(n, target) {
			r.steps = append(r.steps, step{kind: stepReplace, slot: j})
		}
	}
	for j := n; j < target; j++ {
		r.steps = append(r.steps, step{kind: stepAdd, slot: j})
	}
	return r
}

// runSteps runs steps until one has to wait for a worker to be ready.
func (s *Supervisor) runSteps() {
	r := s.rollout
	for r != nil && r.inFlight == nil {
		if len(r.steps) == 0 {
			s.finishRollout()
			return
		}
		st := r.steps[0]
		r.steps = r.steps[1:]
		r.current = st
		if err := s.runStep(st); err != nil {
			s.abortRollout(err.Error())
			return
		}
	}
}

func (s *Supervisor) runStep(st step) error {
	switch st.kind {
	case stepAdd:
		s.slots = append(s.slots, &slot{index: st.slot})
		s.ensureSockets() // lent to a running worker until the new one is ready
		s.rehome()
		fallthrough
	case stepReplace:
		sl := s.slots[st.slot]
		w, err := s.spawn(sl)
		if err != nil {
			return err
		}
		sl.next = w
		s.rollout.inFlight = w
	case stepRemove:
		sl := s.slots[st.slot]
		s.slots = s.slots[:st.slot]
		s.rehome()
		s.handOverAll(sl.cur, s.survivors(), control.ReasonScaleDown)
		for _, w := range []*worker{sl.cur, sl.next} {
			if w != nil {
				s.retire(w, "slot removed")
			}
		}
		// reconcile lends the removed slot's sockets to their new homes
		// before the retired worker has stopped accepting on them.
		s.reconcile()
	}
	return nil
}

// restartStep starts a step's new worker again, once, when it died of a
// HUP before it was ready: a HUP sent to every process of the service (as
// `systemctl kill -s HUP` does) can reach a worker in the first
// milliseconds of its start, before it can ignore it (see handoff.Start).
// It reports whether the step goes on.
func (s *Supervisor) restartStep(sl *slot, err error) bool {
	r := s.rollout
	if r == nil || r.current.restarted || killedBy(err) != syscall.SIGHUP {
		return false
	}
	w, serr := s.spawn(sl)
	if serr != nil {
		return false
	}
	r.current.restarted = true
	sl.next, r.inFlight = w, w
	s.log.Warn("new worker died of a HUP meant for the supervisor; starting it again", "slot", sl.index, "pid", w.proc.pid())
	return true
}

// stepDone is called when a step's new worker is ready.
func (s *Supervisor) stepDone() {
	if s.rollout == nil {
		return
	}
	s.rollout.inFlight = nil
	s.runSteps()
}

func (s *Supervisor) finishRollout() {
	r := s.rollout
	s.rollout = nil
	s.log.Info("rollout complete", "rollout", r.name, "workers", len(s.slots), "pids", s.pids(), "took", s.env.now().Sub(r.started).Round(time.Millisecond))
	if r.name == "reload" {
		s.metrics.countReload(true)
	}
	r.reply(nil)
	s.scheduleConverge()
	s.announceServing(r.name == "reload")
	s.nextRollout()
}

// abortRollout stops a rollout whose new worker failed: the workers already
// serving keep serving. A slot added by the failed step is dropped again;
// its socket stays open and is lent to a running worker (see reconcile).
func (s *Supervisor) abortRollout(why string) {
	r := s.rollout
	if r == nil {
		return
	}
	s.rollout = nil
	s.log.Error("rollout aborted; the serving workers keep serving", "rollout", r.name, "reason", why)
	if w := r.inFlight; w != nil {
		if sl := s.slotOf(w); sl != nil {
			sl.next = nil
		}
		if _, alive := s.workers[w]; alive && !w.killed {
			w.drainBy = s.env.now().Add(quitTimeout)
			s.kill(w)
		}
	}
	if r.current.kind == stepAdd && r.current.slot == len(s.slots)-1 && s.slots[r.current.slot].cur == nil {
		s.slots = s.slots[:r.current.slot]
		s.rehome()
	}
	// A slot whose worker crashed while its replacement was starting was
	// left for the replacement; it needs a restart of its own now.
	for _, sl := range s.slots {
		if sl.cur == nil && sl.next == nil && sl.restartAt.IsZero() {
			s.scheduleRestart(sl, 0)
		}
	}
	if r.name == "reload" {
		s.metrics.countReload(false)
	}
	r.reply(fmt.Errorf("%s aborted: %s", r.name, why))
	s.scheduleConverge()
	s.announceServing(r.name == "reload")
	s.nextRollout()
}

func (s *Supervisor) pids() string {
	var b strings.Builder
	for i, sl := range s.slots {
		if i > 0 {
			b.WriteByte(' ')
		}
		if sl.cur != nil {
			fmt.Fprintf(&b, "%d", sl.cur.proc.pid())
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

// signalName is the name operators type (HUP, TTIN), not Go's description
// ("stopped (tty input)").
func signalName(sig os.Signal) string {
	if ss, ok := sig.(syscall.Signal); ok {
		if name := unix.SignalName(ss); name != "" {
			return strings.TrimPrefix(name, "SIG")
		}
	}
	return sig.String()
}
