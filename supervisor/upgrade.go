package supervisor

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/camelot/lancelot/shared/handoff"
)

// Upgrade timings. A successor says hello first thing, so one that is not
// lancelot is found out long before it could have been ready.
const (
	helloTimeout   = 3 * time.Second  // hello from a binary not known to be lancelot
	servingTimeout = 10 * time.Second // "serving" after our accept
)

// upgrade is a binary upgrade in flight, seen from the predecessor: the
// successor, started from the binary on disk, has the sockets but has not
// taken over.
type upgrade struct {
	proc successorProc
	bin  binaryInfo // what the executable was found to be
	// deadline is when it must be ready; helloBy, when it must have said
	// hello (zero for a binary known to be lancelot, which may be release
	// 0.2.0 and say nothing before it is ready).
	deadline, helloBy time.Time
	// protocol and release are what its hello announced.
	protocol int
	release  string
	// ready: every worker of it accepts, so it serves clients too;
	// accepted: we answered accept and wait for "serving" until servingBy.
	ready, accepted bool
	servingBy       time.Time
	replies         []chan error // Upgrade calls waiting for the outcome
}

// startUpgrade starts a successor for USR2 (reply nil) or Upgrade.
func (s *Supervisor) startUpgrade(reply chan error) {
	if err := s.upgradeRefusal(); err != nil {
		s.log.Warn("USR2 refused: "+err.Error(), "pid", os.Getpid())
		replyTo(reply, err)
		return
	}
	bin := s.env.inspect(s.opts.Executable)
	if bin.kind == binaryOther {
		why := fmt.Sprintf("%s is not lancelot (%s)", s.opts.Executable, bin.what)
		s.log.Error("binary upgrade refused; still serving", "reason", why)
		replyTo(reply, errors.New("binary upgrade refused: "+why))
		return
	}
	u := handoff.Upgrade{Running: s.running, Configured: s.cfg.Workers}
	defer func() {
		for _, f := range u.Sockets {
			f.Close()
		}
	}()
	for _, sock := range s.sockets {
		if sock.retiring {
			continue // its address is gone; our workers take its queue
		}
		f, err := sock.file()
		if err != nil {
			s.failStart(reply, err)
			return
		}
		u.Sockets = append(u.Sockets, f)
	}
	proc, err := s.env.startSuccessor(u)
	if err != nil {
		s.failStart(reply, err)
		return
	}
	now := s.env.now()
	s.upgrade = &upgrade{proc: proc, bin: bin, deadline: now.Add(readyTimeout)}
	if bin.kind != binaryLancelot {
		s.upgrade.helloBy = now.Add(helloTimeout)
	}
	if reply != nil {
		s.upgrade.replies = append(s.upgrade.replies, reply)
	}
	s.log.Info("binary upgrade started", "old_pid", os.Getpid(), "binary", s.opts.Executable, "found", bin.what)
	s.opts.Notify("STATUS=binary upgrade in progress")
}

// upgradeRefusal says why an upgrade cannot start now; nil when it can.
func (s *Supervisor) upgradeRefusal() error {
	switch {
	case s.upgrade != nil && s.upgrade.proc.pid() == 0:
		return fmt.Errorf("another binary upgrade is in flight (its new supervisor is starting)")
	case s.upgrade != nil:
		return fmt.Errorf("another binary upgrade is in flight (new supervisor pid %d)", s.upgrade.proc.pid())
	case s.leaving() || s.handedOver:
		return errStopping
	case !s.ready:
		return fmt.Errorf("supervisor is not ready yet")
	}
	return nil
}

func (s *Supervisor) failStart(reply chan error, err error) {
	err = fmt.Errorf("binary upgrade failed to start: %w", err)
	s.log.Error(err.Error()+"; still serving", "binary", s.opts.Executable)
	replyTo(reply, err)
}

func replyTo(reply chan error, err error) {
	if reply != nil {
		reply <- err
	}
}

// successorReport acts on what the launcher or the successor said.
func (s *Supervisor) successorReport(u *upgrade, rep handoff.Report) {
	switch rep.Kind {
	case handoff.ReportPID:
		s.log.Info("binary upgrade: new supervisor started", "new_pid", rep.PID)
	case handoff.ReportHello:
		if rep.Protocol == handoff.LegacyProtocol || !handoff.Speaks(rep.Protocol) {
			s.refuseUpgrade(fmt.Sprintf("the new supervisor announced handoff protocol %d (%s); this one speaks %d and %d",
				rep.Protocol, rep.Release, handoff.LegacyProtocol, handoff.Protocol))
			return
		}
		u.protocol, u.release, u.helloBy = rep.Protocol, rep.Release, time.Time{}
		s.log.Info("binary upgrade: new supervisor speaks handoff protocol "+strconv.Itoa(rep.Protocol),
			"new_pid", u.proc.pid(), "release", rep.Release)
	case handoff.ReportRefuse:
		s.refuseUpgrade("the new supervisor gave up: " + rep.Reason)
	case handoff.ReportReady:
		s.successorReady(u, rep.Protocol)
	case handoff.ReportServing:
		if !u.accepted {
			s.refuseUpgrade("the new supervisor said serving before it was accepted")
			return
		}
		s.handOver()
	}
}

// successorReady accepts a successor whose workers all accept. systemd
// learns the new main pid from us first, before we accept: the successor
// may then announce itself, and we stay main until it has.
func (s *Supervisor) successorReady(u *upgrade, protocol int) {
	switch {
	case protocol != handoff.LegacyProtocol && u.protocol == 0:
		s.refuseUpgrade("the new supervisor said ready without its hello")
		return
	case protocol == handoff.LegacyProtocol && u.protocol != 0:
		s.refuseUpgrade("the new supervisor said hello, then answered as release 0.2.0 does")
		return
	}
	u.ready = true
	pid := u.proc.pid()
	s.opts.Notify("MAINPID=" + strconv.Itoa(pid))
	if protocol == handoff.LegacyProtocol {
		// Release 0.2.0 wrote its pid file and told systemd before its
		// byte; it expects no answer.
		u.protocol = protocol
		s.handOver()
		return
	}
	if err := u.proc.accept(); err != nil {
		s.successorFailed(u, u.proc, fmt.Errorf("accept: %w", err))
		return
	}
	u.accepted = true
	u.servingBy = s.env.now().Add(servingTimeout)
	s.log.Info("binary upgrade: new supervisor accepted", "new_pid", pid)
}

// successorFailed handles the successor's channel closing or its process
// ending before it took over.
func (s *Supervisor) successorFailed(u *upgrade, proc successorProc, err error) {
	if u == nil || proc != u.proc {
		return // a late report about an upgrade already settled
	}
	s.refuseUpgrade(fmt.Sprintf("the new supervisor (%s) failed: %v", u.bin.what, err))
}

// handOver completes the upgrade: the successor serves, this supervisor
// retires.
func (s *Supervisor) handOver() {
	u := s.upgrade
	s.upgrade = nil
	s.handedOver = true
	s.log.Info("binary upgrade complete; old supervisor retiring", "old_pid", os.Getpid(), "new_pid", u.proc.pid(),
		"release", u.release, "handoff_protocol", u.protocol)
	s.metrics.mu.Lock()
	s.metrics.successor = u.proc.pid()
	s.metrics.mu.Unlock()
	for _, r := range u.replies {
		r <- nil
	}
	s.forwardRequests(u.proc)
	u.proc.done()
	s.stop(sigTerm)
}

// forwardRequests hands the requests that waited for the upgrade to the
// successor, which now owns the service. A Reload caller is told to ask the
// successor: this supervisor cannot tell how that one's reload went.
func (s *Supervisor) forwardRequests(to successorProc) {
	for _, req := range s.requests {
		sig, ok := req.sig.(syscall.Signal)
		if !ok || req.kind == requestConverge {
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

// checkUpgradeDeadlines refuses a successor that missed one.
func (s *Supervisor) checkUpgradeDeadlines(now time.Time) {
	u := s.upgrade
	switch {
	case u == nil:
	case !u.helloBy.IsZero() && !now.Before(u.helloBy):
		s.refuseUpgrade(fmt.Sprintf("no handoff hello within %v from %s (%s): not lancelot, or not one that can take over",
			helloTimeout, s.opts.Executable, u.bin.what))
	case u.accepted && !now.Before(u.servingBy):
		s.refuseUpgrade(fmt.Sprintf("accepted, but it did not take over within %v", servingTimeout))
	case !u.accepted && !now.Before(u.deadline):
		s.refuseUpgrade(fmt.Sprintf("not ready within %v", readyTimeout))
	}
}

// upgradeDeadline is the earliest deadline of the upgrade in flight.
func (s *Supervisor) upgradeDeadline() time.Time {
	u := s.upgrade
	if u == nil {
		return time.Time{}
	}
	if u.accepted {
		return u.servingBy
	}
	return earliest(u.deadline, u.helloBy)
}

// refuseUpgrade ends an upgrade that will not happen: the successor is told
// why and ended — gracefully once it serves clients, at once before — the
// pid file and systemd's main pid are ours again, and this supervisor
// serves on.
func (s *Supervisor) refuseUpgrade(why string) {
	u := s.upgrade
	if u == nil {
		return
	}
	s.upgrade = nil
	pid := u.proc.pid()
	s.log.Error("binary upgrade refused; still serving", "new_pid", pid, "reason", why)
	u.proc.refuse(why, u.ready)
	if u.ready {
		s.restorePIDFile(pid)
		s.opts.Notify("MAINPID=" + strconv.Itoa(os.Getpid()))
	}
	for _, r := range u.replies {
		r <- fmt.Errorf("binary upgrade refused: %s", why)
	}
	s.opts.Notify(s.statusLine())
	s.nextRollout()
}
