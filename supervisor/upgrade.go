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

// upgrade is a binary upgrade in flight, seen from the predecessor: the
// successor, started from the binary on disk, has the sockets but has not
// taken over. hs decides the order of the handshake and its deadlines.
type upgrade struct {
	proc    successorProc
	bin     binaryInfo // what the executable was found to be
	hs      *handoff.Predecessor
	replies []chan error // Upgrade calls waiting for the outcome
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
	if s.rollout != nil {
		// Sockets a rollout binds after the sockets were handed over
		// would close with this supervisor: wait until it ends.
		s.deferUpgrade(reply)
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
		u.Activated = append(u.Activated, s.addrActivated(sock.addr))
	}
	proc, err := s.env.startSuccessor(u)
	if err != nil {
		s.failStart(reply, err)
		return
	}
	s.upgrade = &upgrade{proc: proc, bin: bin, hs: handoff.NewPredecessor(s.env.now(), bin.kind == binaryLancelot)}
	if reply != nil {
		s.upgrade.replies = append(s.upgrade.replies, reply)
	}
	s.log.Info("binary upgrade started", "old_pid", os.Getpid(), "binary", s.opts.Executable, "found", bin.what)
	s.opts.Notify("STATUS=binary upgrade in progress")
}

// deferUpgrade holds a USR2 that came during a rollout until it ends (see
// startDeferredUpgrade): the sockets a rollout binds after the handover
// would never reach the successor, and would close, resetting their
// queues, with this supervisor. Rollouts queued meanwhile wait for the
// upgrade, as they wait for any upgrade in flight.
func (s *Supervisor) deferUpgrade(reply chan error) {
	if !s.upgradeDue {
		s.log.Info("binary upgrade deferred until the "+s.rollout.name+" in progress ends", "pid", os.Getpid())
	}
	s.upgradeDue = true
	if reply != nil {
		s.upgradeWaiting = append(s.upgradeWaiting, reply)
	}
}

// startDeferredUpgrade starts the upgrade deferUpgrade held, once no
// rollout runs.
func (s *Supervisor) startDeferredUpgrade() {
	if !s.upgradeDue || s.rollout != nil {
		return
	}
	replies := s.upgradeWaiting
	s.upgradeDue, s.upgradeWaiting = false, nil
	if s.leaving() {
		s.failRequests(asRequests(replies), errStopping.Error())
		return
	}
	s.startUpgrade(nil)
	if s.upgrade == nil {
		s.failRequests(asRequests(replies), "binary upgrade failed to start; see the log")
		return
	}
	s.upgrade.replies = append(s.upgrade.replies, replies...)
}

func asRequests(replies []chan error) []request {
	reqs := make([]request, len(replies))
	for i, r := range replies {
		reqs[i] = request{reply: r}
	}
	return reqs
}

// upgradeOnStop settles the upgrade in flight when a stop begins. A
// successor already accepted takes over: it may be telling systemd it is
// the main process, and it serves; this supervisor leaves the pid file and
// systemd to it. Any other is refused.
func (s *Supervisor) upgradeOnStop() {
	if u := s.upgrade; u != nil && u.hs.Phase() >= handoff.PhaseAccepted {
		s.upgrade = nil
		s.handedOver = true
		s.log.Info("stopping during a binary upgrade: the accepted new supervisor takes over", "new_pid", u.proc.pid())
		s.metrics.mu.Lock()
		s.metrics.successor = u.proc.pid()
		s.metrics.mu.Unlock()
		for _, r := range u.replies {
			r <- nil
		}
		u.proc.done()
		return
	}
	s.refuseUpgrade("supervisor stopping")
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

// successorReport acts on what the launcher or the successor said, as
// the handshake's state machine decides.
func (s *Supervisor) successorReport(u *upgrade, rep handoff.Report) {
	act, err := u.hs.Step(rep, s.env.now())
	if err != nil {
		closeFiles(rep.Files)
		s.refuseUpgrade(err.Error())
		return
	}
	switch {
	case rep.Kind == handoff.ReportPID:
		s.log.Info("binary upgrade: new supervisor started", "new_pid", rep.PID)
	case rep.Kind == handoff.ReportHello:
		s.log.Info("binary upgrade: new supervisor speaks handoff protocol "+strconv.Itoa(rep.Protocol),
			"new_pid", u.proc.pid(), "release", rep.Release)
	}
	s.act(u, act, rep.Files)
}

// act carries out what the state machine decided.
func (s *Supervisor) act(u *upgrade, act handoff.Action, ends []*os.File) {
	switch act {
	case handoff.SendAccept:
		// The successor tells systemd MAINPID= itself once it read the
		// accept (the unit has NotifyAccess=all): until then this one is
		// the main process, whatever happens to the successor.
		if err := u.proc.accept(); err != nil {
			s.successorFailed(u, u.proc, fmt.Errorf("accept: %w", err))
			return
		}
		u.hs.Accepted(s.env.now())
		s.log.Info("binary upgrade: new supervisor accepted", "new_pid", u.proc.pid())
	case handoff.HandOver:
		s.handOver(ends)
	default:
		closeFiles(ends)
	}
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// successorFailed handles the successor's channel closing or its process
// ending: before it took over, a failure; after "serving", the end of the
// handoff.
func (s *Supervisor) successorFailed(u *upgrade, proc successorProc, err error) {
	if u == nil || proc != u.proc {
		return // a late report about an upgrade already settled
	}
	act, err := u.hs.ChannelEnded(err)
	if err != nil {
		s.refuseUpgrade(fmt.Sprintf("the new supervisor (%s) failed: %v", u.bin.what, err))
		return
	}
	s.act(u, act, nil)
}

// handOver completes the upgrade: the successor serves, this supervisor
// retires, handing its connections through ends (the successor's
// connection receivers) when the successor's version can take them.
func (s *Supervisor) handOver(ends []*os.File) {
	u := s.upgrade
	s.upgrade = nil
	s.handedOver = true
	s.log.Info("binary upgrade complete; old supervisor retiring", "old_pid", os.Getpid(), "new_pid", u.proc.pid(),
		"release", u.hs.Release, "handoff_protocol", u.hs.Protocol)
	if !handoff.Can(u.hs.Protocol).Conns {
		s.log.Info("binary upgrade: the new supervisor cannot take connections over (handoff protocol "+
			strconv.Itoa(u.hs.Protocol)+"): open connections are drained, not handed over", "release", u.hs.Release)
	}
	s.metrics.mu.Lock()
	s.metrics.successor = u.proc.pid()
	s.metrics.mu.Unlock()
	for _, r := range u.replies {
		r <- nil
	}
	s.forwardRequests(u)
	u.proc.done()
	s.handOverToSuccessor(ends)
	s.stop(sigTerm)
}

// forwardRequests hands the requests that waited for the upgrade to the
// successor, which now owns the service: on the channel, every one of them
// in order (handoff protocol 3). A Reload caller is told to ask the
// successor: this supervisor cannot tell how that one's reload went.
func (s *Supervisor) forwardRequests(u *upgrade) {
	to := u.proc
	var sigs []syscall.Signal
	for _, req := range s.requests {
		sig, ok := req.sig.(syscall.Signal)
		if !ok || req.kind == requestConverge {
			continue // a converge: the successor converges on its own
		}
		sigs = append(sigs, sig)
		s.log.Info("request passed on to the new supervisor", "signal", signalName(req.sig), "new_pid", to.pid())
		if req.reply != nil {
			req.reply <- fmt.Errorf("a binary upgrade took over (new supervisor pid %d): reload that one", to.pid())
		}
	}
	s.requests = nil
	if handoff.Can(u.hs.Protocol).Requests {
		err := to.passOn(sigs)
		if err == nil {
			return
		}
		s.log.Warn("binary upgrade: pass the waiting requests on; signalling them instead", "err", err, "new_pid", to.pid())
	}
	// Release 0.3.0 reads no requests: signals, of which two of a kind
	// sent back to back may arrive as one.
	for _, sig := range sigs {
		to.signal(sig)
	}
}

// checkUpgradeDeadlines acts on a deadline the upgrade in flight missed.
func (s *Supervisor) checkUpgradeDeadlines(now time.Time) {
	u := s.upgrade
	if u == nil {
		return
	}
	act, err := u.hs.Expired(now)
	if err != nil {
		s.refuseUpgrade(fmt.Sprintf("%s (%s): %v", s.opts.Executable, u.bin.what, err))
		return
	}
	if act == handoff.HandOver {
		s.log.Warn("binary upgrade: no connection receivers from the new supervisor in time; draining")
	}
	s.act(u, act, nil)
}

// upgradeDeadline is the deadline of the upgrade in flight.
func (s *Supervisor) upgradeDeadline() time.Time {
	if s.upgrade == nil {
		return time.Time{}
	}
	return s.upgrade.hs.Deadline()
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
	// A successor that was accepted may be writing the pid file and
	// telling systemd it is the main process: it is killed, and gone,
	// before this supervisor takes both back, so it cannot act on the
	// accept afterwards. Release 0.2.0 writes both before its ready byte
	// (and removes the pid file at exit only if it still names it).
	u.proc.refuse(why, u.hs.Phase() == handoff.PhaseAccepted)
	if pid > 0 {
		s.restorePIDFile(pid)
		s.opts.Notify("MAINPID=" + strconv.Itoa(os.Getpid()))
	}
	for _, r := range u.replies {
		r <- fmt.Errorf("binary upgrade refused: %s", why)
	}
	s.opts.Notify(s.statusLine())
	s.nextRollout()
}
