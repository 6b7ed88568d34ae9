package supervisor

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/camelot/lancelot/shared/handoff"
)

// upgrade is a binary upgrade in flight: the successor, started from the
// binary on disk, has the sockets but has not said it is ready.
type upgrade struct {
	proc     successorProc
	deadline time.Time
}

func (s *Supervisor) startUpgrade() {
	switch {
	case s.upgrade != nil:
		s.log.Warn("USR2 refused: a binary upgrade is already in flight", "new_pid", s.upgrade.proc.pid())
		return
	case s.leaving() || s.handedOver:
		s.log.Warn("USR2 refused: supervisor is stopping")
		return
	case !s.ready:
		s.log.Warn("USR2 refused: supervisor is not ready yet")
		return
	}
	u := handoff.Upgrade{Running: s.running, Configured: s.cfg.Workers}
	defer func() {
		for _, f := range u.Sockets {
			f.Close()
		}
	}()
	for _, sock := range s.sockets {
		f, err := sock.file()
		if err != nil {
			s.log.Error("binary upgrade failed to start; still serving", "err", err)
			return
		}
		u.Sockets = append(u.Sockets, f)
	}
	proc, err := s.env.startSuccessor(u)
	if err != nil {
		s.log.Error("binary upgrade failed to start; still serving", "err", err)
		return
	}
	s.upgrade = &upgrade{proc: proc, deadline: s.env.now().Add(readyTimeout)}
	s.log.Info("binary upgrade started", "old_pid", os.Getpid(), "binary", s.opts.Executable)
	s.opts.Notify("STATUS=binary upgrade in progress")
}

func (s *Supervisor) successorEvent(ev event) {
	if s.upgrade == nil || ev.successor != s.upgrade.proc {
		return // a late report about an upgrade already settled
	}
	pid := s.upgrade.proc.pid()
	if ev.kind == eventSuccessorFailed {
		s.log.Error("binary upgrade failed; still serving", "new_pid", pid, "err", ev.err)
		s.cancelUpgrade("")
		s.opts.Notify(s.statusLine())
		s.nextRollout()
		return
	}
	proc := s.upgrade.proc
	s.upgrade = nil
	s.handedOver = true
	s.log.Info("binary upgrade complete; old supervisor retiring", "old_pid", os.Getpid(), "new_pid", pid)
	s.forwardRequests(proc)
	s.stop(sigTerm)
}

// forwardRequests hands the requests that waited for the upgrade to the
// successor, which now owns the service. A Reload caller is told to ask the
// successor: this supervisor cannot tell how that one's reload went.
func (s *Supervisor) forwardRequests(to successorProc) {
	for _, req := range s.requests {
		sig, ok := req.sig.(syscall.Signal)
		if !ok {
			continue // a converge: the successor converges on its own
		}
		to.signal(sig)
		s.log.Info("request passed on to the new supervisor", "signal", signalName(req.sig), "new_pid", to.pid())
		if req.reply != nil {
			req.reply <- fmt.Errorf("a binary upgrade took over (new supervisor pid %d): reload that one", to.pid())
		}
	}
	s.requests = nil
}

func (s *Supervisor) upgradeTimedOut() {
	s.log.Error("binary upgrade: new supervisor not ready in time; killing it, still serving", "new_pid", s.upgrade.proc.pid(), "timeout", readyTimeout)
	s.cancelUpgrade("")
}

// cancelUpgrade kills a successor that has not taken over.
func (s *Supervisor) cancelUpgrade(why string) {
	if s.upgrade == nil {
		return
	}
	if why != "" {
		s.log.Warn("binary upgrade cancelled", "reason", why)
	}
	s.upgrade.proc.kill()
	s.upgrade = nil
}

// successorProcess is a real successor. It is started through a launcher,
// this binary's hidden `upgrade-launch` command, which starts the new
// binary, reports its pid on the readiness pipe and exits at once: the
// successor is then re-parented (to systemd, when it is PID 1) before it
// announces itself with MAINPID=. systemd treats a main pid that is not its
// own child as alien, and on stop would SIGKILL it instead of waiting for
// it to drain.
type successorProcess struct {
	launcher *exec.Cmd

	mu   sync.Mutex
	pidv int
	fd   *pidfd // the successor, once the launcher reported it
}

// startSuccessorProcess starts the launcher with u and reports the
// successor's readiness, or failure, as events.
func startSuccessorProcess(s *Supervisor, u handoff.Upgrade) (*successorProcess, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("readiness pipe: %w", err)
	}
	u.Ready = w
	args := append([]string{"upgrade-launch", "--", s.opts.Executable}, s.opts.Args...)
	cmd := u.Command("/proc/self/exe", args, s.opts.Env)
	cmd.Args[0] = s.opts.Executable
	cmd.Stdout, cmd.Stderr = s.opts.Stdout, s.opts.Stderr
	err = handoff.Start(cmd)
	w.Close()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("start upgrade launcher: %w", err)
	}
	p := &successorProcess{launcher: cmd}
	go cmd.Wait() // the launcher exits as soon as the successor started
	go func() {
		defer r.Close()
		err := handoff.ReadReport(r, p.setPID)
		kind := eventSuccessorReady
		if err != nil {
			kind = eventSuccessorFailed
		}
		s.send(event{kind: kind, successor: p, err: err})
	}()
	return p, nil
}

func (p *successorProcess) setPID(pid int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pidv, p.fd = pid, openPidfd(pid)
}

func (p *successorProcess) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pidv
}

func (p *successorProcess) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fd.signal(sig)
}

func (p *successorProcess) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fd == nil {
		// The launcher has not reported the successor yet: it reports
		// right after starting it, so ending the launcher now almost
		// always means no successor is ever started.
		p.launcher.Process.Kill()
		return
	}
	p.fd.kill()
	p.fd.close()
}
