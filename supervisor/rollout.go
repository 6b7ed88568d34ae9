package supervisor

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/camelot/lancelot/shared/config"
	"golang.org/x/sys/unix"
)

// rollout is a sequence of steps that moves the slots to a new shape (HUP,
// TTIN, TTOU), one worker at a time: each step that starts a worker waits
// for it to be ready before the next step runs, and a worker is retired
// only after its replacement is ready.
type rollout struct {
	name     string
	steps    []step
	inFlight bool
	started  time.Time
}

type stepKind int

const (
	stepReplace stepKind = iota + 1 // start a new worker for an existing slot
	stepAdd                         // add a slot and start its worker
	stepRemove                      // retire the last slot's worker and drop the slot
)

type step struct {
	kind    stepKind
	slot    int
	sockets []int
}

func (s *Supervisor) handleSignal(sig os.Signal) {
	s.log.Info("signal received", "signal", signalName(sig), "pid", os.Getpid())
	switch sig {
	case syscall.SIGTERM, syscall.SIGINT:
		s.stop(syscall.SIGTERM)
	case syscall.SIGQUIT:
		s.stop(syscall.SIGQUIT)
	case syscall.SIGUSR2:
		s.startUpgrade()
	case syscall.SIGHUP, syscall.SIGTTIN, syscall.SIGTTOU:
		if s.stopping != 0 {
			return
		}
		s.requests = append(s.requests, sig)
		s.nextRollout()
	}
}

// nextRollout starts the next queued request when none is running.
func (s *Supervisor) nextRollout() {
	for s.rollout == nil && len(s.requests) > 0 && s.stopping == 0 {
		sig := s.requests[0]
		s.requests = s.requests[1:]
		if r := s.plan(sig); r != nil {
			s.rollout = r
			s.log.Info("rollout starting", "rollout", r.name, "steps", len(r.steps))
			s.opts.Notify("STATUS=" + r.name + " in progress")
			s.runSteps()
		}
	}
}

// plan turns a request into steps against the current slots.
func (s *Supervisor) plan(sig os.Signal) *rollout {
	n := len(s.slots)
	switch sig {
	case syscall.SIGHUP:
		s.opts.Notify(reloadingState())
		target, ok := s.reloadConfig()
		if !ok {
			s.opts.Notify("READY=1\nSTATUS=reload failed; still serving the previous configuration")
			return nil
		}
		return s.planShape("reload", target, true)
	case syscall.SIGTTIN:
		if n >= config.MaxWorkers {
			s.log.Warn("TTIN refused: at the worker limit", "workers", n)
			return nil
		}
		return s.planShape("scale up", n+1, false)
	case syscall.SIGTTOU:
		if n <= 1 {
			s.log.Warn("TTOU refused: never fewer than one worker")
			return nil
		}
		return s.planShape("scale down", n-1, false)
	}
	return nil
}

// reloadConfig re-reads the configuration for HUP. A runtime TTIN/TTOU
// count survives the reload unless the configured worker count changed.
func (s *Supervisor) reloadConfig() (int, bool) {
	target := len(s.slots)
	if s.opts.Reload == nil {
		return target, true
	}
	cfg, err := s.opts.Reload()
	if err != nil {
		s.log.Error("reload: configuration rejected; keeping the running one", "err", err)
		return 0, false
	}
	if cfg.Listen != s.cfg.Listen {
		s.log.Warn("reload: listen address changes need a restart; keeping the open sockets", "listen", s.cfg.Listen, "configured", cfg.Listen)
		cfg.Listen = s.cfg.Listen
	}
	if cfg.Workers != s.cfg.Workers {
		target = cfg.Workers
	}
	s.cfg = cfg
	s.log.Info("reload: configuration read", "workers", target)
	return target, true
}

// reloadingState is the notification for Type=notify-reload: systemd wants
// RELOADING=1 together with the CLOCK_MONOTONIC time in microseconds.
func reloadingState() string {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", ts.Nano()/1000)
}

// planShape moves from the current slots to target slots. replaceAll
// replaces every surviving slot's worker (HUP); otherwise only slots that
// must take over another slot's sockets are replaced.
func (s *Supervisor) planShape(name string, target int, replaceAll bool) *rollout {
	s.ensureSockets(target)
	plan := assign(len(s.sockets), target)
	n := len(s.slots)
	r := &rollout{name: name, started: time.Now()}
	for j := 0; j < min(n, target); j++ {
		if replaceAll || !isSubset(plan[j], s.slots[j].sockets) {
			r.steps = append(r.steps, step{kind: stepReplace, slot: j, sockets: plan[j]})
		}
	}
	for j := n; j < target; j++ {
		r.steps = append(r.steps, step{kind: stepAdd, slot: j, sockets: plan[j]})
	}
	for j := n - 1; j >= target; j-- {
		r.steps = append(r.steps, step{kind: stepRemove, slot: j})
	}
	return r
}

// ensureSockets binds a socket for each new slot beyond the existing ones.
// Where that fails (an activated socket without SO_REUSEPORT), new slots
// share the existing sockets.
func (s *Supervisor) ensureSockets(target int) {
	for len(s.sockets) < target {
		sock, err := bindSocket(s.sockets[0].addr)
		if err != nil {
			s.log.Warn("cannot add a listening socket; new workers will share the existing ones", "err", err)
			return
		}
		s.sockets = append(s.sockets, sock)
	}
}

func isSubset(a, b []int) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// runSteps runs steps until one has to wait for a worker to be ready.
func (s *Supervisor) runSteps() {
	r := s.rollout
	for r != nil && !r.inFlight {
		if len(r.steps) == 0 {
			s.finishRollout()
			return
		}
		st := r.steps[0]
		r.steps = r.steps[1:]
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
		fallthrough
	case stepReplace:
		sl := s.slots[st.slot]
		sl.sockets = st.sockets
		w, err := s.spawn(sl)
		if err != nil {
			return err
		}
		sl.next = w
		s.rollout.inFlight = true
	case stepRemove:
		sl := s.slots[st.slot]
		s.slots = s.slots[:st.slot]
		for _, w := range []*worker{sl.cur, sl.next} {
			if w != nil {
				s.retire(w, "slot removed")
			}
		}
		s.updateServing()
	}
	return nil
}

// stepDone is called when a step's new worker is ready.
func (s *Supervisor) stepDone() {
	if s.rollout == nil {
		return
	}
	s.rollout.inFlight = false
	s.runSteps()
}

func (s *Supervisor) finishRollout() {
	r := s.rollout
	s.rollout = nil
	s.log.Info("rollout complete", "rollout", r.name, "workers", len(s.slots), "pids", s.pids(), "took", time.Since(r.started).Round(time.Millisecond))
	s.announceServing(r.name == "reload")
	s.nextRollout()
}

// abortRollout stops a rollout whose new worker failed: the workers already
// serving keep serving. A slot added by the failed step is dropped again.
func (s *Supervisor) abortRollout(why string) {
	r := s.rollout
	if r == nil {
		return
	}
	s.rollout = nil
	s.log.Error("rollout aborted; the serving workers keep serving", "rollout", r.name, "reason", why)
	for _, sl := range s.slots {
		if w := sl.next; w != nil {
			w.draining = true
			w.signal(sigKill)
			s.retiring[w] = time.Now().Add(quitTimeout)
			sl.next = nil
		}
	}
	for len(s.slots) > 1 {
		last := s.slots[len(s.slots)-1]
		if last.cur != nil || !last.restartAt.IsZero() {
			break
		}
		s.slots = s.slots[:len(s.slots)-1]
	}
	s.updateServing()
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
			fmt.Fprintf(&b, "%d", sl.cur.pid)
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
