package supervisor

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/camelot/lancelot/shared/pidfile"
	"github.com/camelot/lancelot/shared/version"
)

const (
	sigTerm = syscall.SIGTERM
	sigQuit = syscall.SIGQUIT
	sigKill = syscall.SIGKILL
)

// announceServing tells systemd the state after a rollout.
func (s *Supervisor) announceServing(afterReload bool) {
	state := s.statusLine()
	if afterReload {
		state = "READY=1\n" + state
	}
	s.opts.Notify(state)
}

func (s *Supervisor) statusLine() string {
	// "serving on" first, as before the version was added: scripts read it.
	return fmt.Sprintf("STATUS=serving on %s with %d workers (pids %s), lancelot %s",
		strings.Join(s.listenAddrs(), ", "), len(s.slots), s.pids(), version.Version)
}

// leave handles TERM and INT. With a drain delay the supervisor first goes
// lame duck: it keeps serving while its agent port says "drain", so a load
// balancer stops sending it clients, and stops when the delay is over. A
// second TERM cuts the delay short; after a handover there is nothing to
// wait for, since the successor serves.
func (s *Supervisor) leave() {
	switch {
	case s.stopping != 0:
	case s.cfg.DrainDelay > 0 && s.lameDuckUntil.IsZero() && !s.handedOver:
		s.lameDuckUntil = s.env.now().Add(s.cfg.DrainDelay)
		s.requests = s.failRequests(s.requests, "supervisor stopping")
		s.upgradeOnStop()
		s.log.Info("draining: serving on while the load balancer moves clients away", "drain_delay", s.cfg.DrainDelay)
		s.opts.Notify("STATUS=draining: stopping in " + s.cfg.DrainDelay.String())
	default:
		s.stop(sigTerm)
	}
}

// leaving reports whether a stop has begun, lame duck included.
func (s *Supervisor) leaving() bool {
	return s.stopping != 0 || !s.lameDuckUntil.IsZero()
}

// stop begins a graceful (SIGTERM) or immediate (SIGQUIT) stop; Run returns
// once every worker has exited.
func (s *Supervisor) stop(how syscall.Signal) {
	if s.stopping == sigQuit || s.stopping == how {
		return
	}
	s.stopping = how
	s.lameDuckUntil, s.convergeAt = time.Time{}, time.Time{}
	s.requests = s.failRequests(s.requests, "supervisor stopping")
	if s.rollout != nil {
		s.rollout.reply(errStopping)
		s.rollout = nil
	}
	s.upgradeOnStop()
	if !s.handedOver {
		s.opts.Notify("STOPPING=1\nSTATUS=stopping")
	}
	bound := quitTimeout
	if how == sigTerm {
		c := s.cfg
		bound = c.ShutdownTimeout + c.ReadTimeout + c.WriteTimeout + drainMargin
	}
	deadline := s.env.now().Add(bound)
	s.log.Info("supervisor stopping", "mode", map[syscall.Signal]string{sigTerm: "graceful", sigQuit: "immediate"}[how], "workers", len(s.workers))
	for _, w := range s.liveWorkers() {
		w.draining = true
		clear(w.serving)
		if w.drainBy.IsZero() || w.drainBy.After(deadline) {
			w.drainBy = deadline
		}
		if !w.killed {
			w.proc.signal(how)
		}
	}
	for _, sl := range s.slots {
		sl.restartAt = time.Time{}
	}
	// Once the workers close their copies, the sockets close and new
	// clients are refused at once instead of queueing for the whole drain
	// with nobody to accept them. (After a binary upgrade the successor
	// holds its own copies, so this closes nothing for clients.)
	s.closeSockets()
}

// killAll ends every worker at once; the last resort when waiting is over.
func (s *Supervisor) killAll() {
	for w := range s.workers {
		w.proc.signal(sigKill)
	}
}

// finish runs after the last worker exited.
func (s *Supervisor) finish() {
	if !s.handedOver {
		s.removePIDFile()
	}
	s.log.Info("supervisor stopped", "pid", os.Getpid())
}

// nextDeadline is the earliest time the loop must wake up by itself.
func (s *Supervisor) nextDeadline() time.Time {
	next := s.env.now().Add(time.Hour)
	earlier := func(t time.Time) {
		if !t.IsZero() && t.Before(next) {
			next = t
		}
	}
	for _, sl := range s.slots {
		earlier(sl.restartAt)
	}
	for w := range s.workers {
		if !w.ready && !w.killed && !w.draining {
			earlier(w.started.Add(readyTimeout))
		}
		if w.draining && !w.killed {
			earlier(w.drainBy)
		}
		earlier(w.killAt)
	}
	earlier(s.upgradeDeadline())
	earlier(s.wdNext)
	earlier(s.lameDuckUntil)
	earlier(s.convergeAt)
	earlier(s.heartbeatDeadline())
	return next
}

// fireDeadlines acts on every deadline that has passed, except the
// slots' restarts: settle does those last (restartDue).
func (s *Supervisor) fireDeadlines(now time.Time) {
	for _, w := range s.liveWorkers() {
		switch {
		case w.killed:
			if !w.killAt.IsZero() && !now.Before(w.killAt) {
				s.log.Warn("hung worker still alive after its stack dump grace; killing it", "slot", w.slot, "pid", w.proc.pid(), "grace", stackDumpGrace)
				s.kill(w)
			}
		case !w.ready && !w.draining && now.Sub(w.started) >= readyTimeout:
			s.log.Error("worker not ready in time; killing it", "slot", w.slot, "pid", w.proc.pid(), "timeout", readyTimeout)
			s.kill(w)
		case w.draining && !now.Before(w.drainBy):
			s.log.Warn("worker still draining at its deadline; killing it", "slot", w.slot, "pid", w.proc.pid())
			s.kill(w)
		}
	}
	s.checkUpgradeDeadlines(now)
	if !s.convergeAt.IsZero() && !now.Before(s.convergeAt) {
		s.converge()
	}
	if !s.lameDuckUntil.IsZero() && !now.Before(s.lameDuckUntil) {
		s.log.Info("drain delay over")
		s.stop(sigTerm)
	}
	if !s.wdNext.IsZero() && !now.Before(s.wdNext) {
		s.opts.Notify("WATCHDOG=1")
		s.wdNext = now.Add(s.opts.Watchdog / 2)
	}
	s.checkHeartbeats(now)
}

func (s *Supervisor) writePIDFile() error {
	if s.cfg.PIDFile == "" {
		return nil
	}
	return pidfile.Write(s.cfg.PIDFile, os.Getpid())
}

// restorePIDFile makes the pid file name this supervisor again if it names
// a successor that did not take over (release 0.2.0 writes it before its
// ready).
func (s *Supervisor) restorePIDFile(successor int) {
	if s.cfg.PIDFile == "" || !s.pidFileNames(successor) {
		return
	}
	if err := s.writePIDFile(); err != nil {
		s.log.Error("restore pid file", "err", err)
	}
}

func (s *Supervisor) pidFileNames(pid int) bool {
	return pidfile.Names(s.cfg.PIDFile, pid)
}

// removePIDFile removes the pid file only if it is still ours: after a
// binary upgrade it names the new supervisor.
func (s *Supervisor) removePIDFile() {
	path := s.cfg.PIDFile
	if path == "" || !s.pidFileNames(os.Getpid()) {
		return
	}
	if err := os.Remove(path); err != nil {
		s.log.Warn("remove pid file", "err", err)
	}
}
