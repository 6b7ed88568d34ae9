package supervisor

import (
	"errors"
	"os"
	"strconv"
	"syscall"

	"github.com/camelot/lancelot/shared/handoff"
	"github.com/camelot/lancelot/shared/version"
)

// predecessorLink is a successor's channel to the supervisor it takes over
// from (see handoff's protocol.go).
type predecessorLink interface {
	// ready tells the predecessor every worker accepts; its verdict comes
	// back as an eventVerdict.
	ready()
	// serving tells it this supervisor has taken over and sends it ends
	// (the connection receivers) when its version can take them; the
	// requests it passes on come back as an eventPassedOn, after which
	// the link is closed.
	serving(ends []*os.File) error
}

// handoffLink is the real link.
type handoffLink struct {
	u      *handoff.Upgrade
	report func(event)
}

func (l *handoffLink) ready() {
	go func() { l.report(event{kind: eventVerdict, err: l.u.Ready()}) }()
}

func (l *handoffLink) serving(ends []*os.File) error {
	err := l.u.Serving(ends)
	go func() {
		sigs, err := l.u.Requests()
		l.report(event{kind: eventPassedOn, sigs: sigs, err: err})
	}()
	return err
}

// announceReady runs once, when every slot first has a ready worker. A
// supervisor that takes over from another asks it first (see
// verdictEvent); any other takes over at once.
func (s *Supervisor) announceReady() {
	if s.link == nil {
		s.takeOver()
		return
	}
	s.awaitingVerdict = true
	s.log.Info("ready; asking the old supervisor to hand over", "pid", os.Getpid())
	s.link.ready()
}

// verdictEvent acts on the predecessor's answer to ready.
func (s *Supervisor) verdictEvent(err error) {
	s.awaitingVerdict = false
	var refused *handoff.RefusedError
	switch {
	case err == nil:
	case errors.Is(err, handoff.ErrPredecessorGone):
		s.log.Warn("the old supervisor is gone without an answer; taking over", "err", err)
	case errors.As(err, &refused):
		s.fail(err)
		return
	default:
		s.fail(err)
		return
	}
	s.takeOver()
}

// fail stops the supervisor for a reason Run then returns.
func (s *Supervisor) fail(err error) {
	s.log.Error("stopping", "err", err)
	s.exitErr = err
	s.stop(sigTerm)
}

// takeOver makes this supervisor the service's: the pid file names it,
// systemd is told (after a handover the predecessor already sent MAINPID=
// for us, and we say it again), and the predecessor learns we serve.
func (s *Supervisor) takeOver() {
	s.ready = true
	if err := s.writePIDFile(); err != nil {
		s.log.Error("write pid file", "err", err)
	}
	if s.opts.Watchdog > 0 {
		s.wdNext = s.env.now()
	}
	s.opts.Notify(s.readyState())
	if s.link != nil {
		s.tellServing()
	}
	s.log.Info("supervisor ready", "pid", os.Getpid(), "workers", len(s.slots), "pids", s.pids(), "version", version.Version)
}

// tellServing tells the predecessor this supervisor serves, with the
// connection receivers, and lets go of the link; the requests that waited
// in the predecessor come back as an eventPassedOn (see passedOn).
func (s *Supervisor) tellServing() {
	s.awaitingRequests = true
	if u := s.opts.Upgrade; !handoff.Can(u.Protocol).Conns {
		s.log.Info("binary upgrade: the old supervisor cannot hand connections over (handoff protocol "+
			strconv.Itoa(u.Protocol)+"): its open connections are drained, not handed over", "release", u.From)
		s.link.serving(nil)
		s.link = nil
		return
	}
	ends, err := s.upgradeConnReceivers()
	if err != nil {
		s.log.Warn("binary upgrade: no connection receivers for the old supervisor; it drains", "err", err)
	}
	if err := s.link.serving(ends); err != nil {
		s.log.Warn("binary upgrade: tell the old supervisor", "err", err)
	}
	closeFiles(ends)
	s.link = nil
}

// passedOn queues the requests the predecessor passed on: the operator's
// HUP, TTIN and TTOU that waited for the upgrade. They go before any this
// supervisor received itself since its pid file named it (a moment before
// the predecessor handed over): they were sent earlier.
func (s *Supervisor) passedOn(sigs []syscall.Signal, err error) {
	if !s.awaitingRequests {
		return
	}
	s.awaitingRequests = false
	if err != nil {
		s.log.Warn("binary upgrade: the old supervisor's waiting requests", "err", err, "passed_on", len(sigs))
	}
	var passed []request
	for _, sig := range sigs {
		if s.leaving() {
			s.log.Warn("request passed on by the old supervisor dropped: stopping", "signal", signalName(sig))
			continue
		}
		s.log.Info("request passed on by the old supervisor", "signal", signalName(sig))
		passed = append(passed, request{kind: requestSignal, sig: sig})
	}
	s.requests = append(passed, s.requests...)
	s.nextRollout()
}

// readyState is the notification that makes this process the ready main
// one: MAINPID first, so systemd follows a successor before its
// predecessor exits.
func (s *Supervisor) readyState() string {
	state := "READY=1\n" + s.statusLine()
	if s.opts.Upgrade != nil {
		state = "MAINPID=" + strconv.Itoa(os.Getpid()) + "\n" + state
	}
	return state
}
