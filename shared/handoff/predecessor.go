package handoff

import (
	"errors"
	"fmt"
	"time"
)

// The handoff's timeouts, the one table of them, in the order a handoff
// meets them (TestTimeoutsOrder holds the order).
const (
	// TimeoutGone bounds the wait for a successor killed after it was
	// accepted to be gone, before the predecessor takes the service back.
	TimeoutGone = 2 * time.Second
	// TimeoutHello: a binary not known to be lancelot must say hello by
	// then, long before it could have been ready.
	TimeoutHello = 3 * time.Second
	// TimeoutConns: after "serving", the connection receivers (version 3)
	// come at once; without them the predecessor drains.
	TimeoutConns = 5 * time.Second
	// TimeoutRequests: after "conns", the successor's wait for the
	// requests the predecessor passes on, which it writes at once.
	TimeoutRequests = 5 * time.Second
	// TimeoutServing: after "accept", the successor writes its pid file,
	// tells systemd and says "serving" (waiting up to a second for its
	// launcher to exit).
	TimeoutServing = 10 * time.Second
	// TimeoutReady: the successor's workers all accept by then.
	TimeoutReady = 15 * time.Second
	// TimeoutVerdict: the successor's wait for "accept" or "refuse" after
	// its "ready"; the predecessor answers at once, unless it is hung.
	TimeoutVerdict = 15 * time.Second
)

// Phase is how far the predecessor's side of a handoff has gone.
type Phase int

const (
	// PhaseStarting: the successor is starting; it says pid, hello, ready.
	PhaseStarting Phase = iota
	// PhaseAccepted: "accept" sent; "serving" is awaited. From here the
	// successor may act on the accept, so the predecessor no longer takes
	// the service back without making sure the successor is gone.
	PhaseAccepted
	// PhaseServing: the successor took over; its connection receivers
	// (version 3) are awaited.
	PhaseServing
	// PhaseDone: the handoff is over.
	PhaseDone
)

// Action is what the predecessor does after a step.
type Action int

const (
	// Wait: nothing yet.
	Wait Action = iota
	// SendAccept: write "accept" (then call Accepted).
	SendAccept
	// HandOver: the successor serves; retire, handing the report's Files
	// (the connection receivers, maybe none) to the retiring workers.
	HandOver
)

// Predecessor is the predecessor's side of the handoff, as a state
// machine: it decides the order (pid, hello, ready, accept, serving,
// conns) and the deadlines. Its owner (the supervisor's loop) feeds it the
// reports it reads and the clock, and carries out the actions; an error
// from Step or Expired is a refusal, with the error as the reason.
type Predecessor struct {
	// Known: the binary is known to be lancelot, which may take longer
	// than TimeoutHello to parse a large configuration before its hello.
	known    bool
	phase    Phase
	started  time.Time
	deadline time.Time
	// PID, Protocol and Release are what the successor reported.
	PID      int
	Protocol int
	Release  string
}

// NewPredecessor starts the predecessor's side at now.
func NewPredecessor(now time.Time, known bool) *Predecessor {
	p := &Predecessor{known: known, started: now, deadline: now.Add(TimeoutReady)}
	if !known {
		p.deadline = now.Add(TimeoutHello)
	}
	return p
}

// Phase reports the phase.
func (p *Predecessor) Phase() Phase { return p.phase }

// Deadline is when Expired must be called next.
func (p *Predecessor) Deadline() time.Time { return p.deadline }

// Step acts on one report.
func (p *Predecessor) Step(rep Report, now time.Time) (Action, error) {
	if rep.Kind == ReportPID && p.PID == 0 {
		// The launcher's line races the successor's own: it may come
		// after any of them.
		p.PID = rep.PID
		return Wait, nil
	}
	if p.phase == PhaseServing {
		// It serves: whatever it says, there is nothing to take back.
		p.phase = PhaseDone
		return HandOver, nil
	}
	switch rep.Kind {
	case ReportRefuse:
		if p.phase < PhaseServing {
			return Wait, fmt.Errorf("the new supervisor gave up: %s", rep.Reason)
		}
	case ReportHello:
		return p.hello(rep)
	case ReportReady:
		if p.phase == PhaseStarting && p.Protocol != 0 {
			return SendAccept, nil
		}
		if p.phase == PhaseStarting {
			return Wait, errors.New("the new supervisor said ready without its hello")
		}
	case ReportServing:
		return p.serving(now)
	case ReportConns:
		if p.phase == PhaseServing {
			p.phase = PhaseDone
			return HandOver, nil
		}
	}
	return Wait, fmt.Errorf("the new supervisor said %s out of turn", rep.Kind)
}

func (p *Predecessor) hello(rep Report) (Action, error) {
	if p.phase != PhaseStarting || p.Protocol != 0 {
		return Wait, errors.New("the new supervisor said hello twice")
	}
	if !Speaks(rep.Protocol) {
		return Wait, fmt.Errorf("the new supervisor announced handoff protocol %d (%s); this one speaks %s",
			rep.Protocol, rep.Release, offer())
	}
	p.Protocol, p.Release = rep.Protocol, rep.Release
	p.deadline = p.started.Add(TimeoutReady)
	return Wait, nil
}

func (p *Predecessor) serving(now time.Time) (Action, error) {
	if p.phase != PhaseAccepted {
		return Wait, errors.New("the new supervisor said serving before it was accepted")
	}
	if !Can(p.Protocol).Conns {
		p.phase = PhaseDone
		return HandOver, nil
	}
	p.phase, p.deadline = PhaseServing, now.Add(TimeoutConns)
	return Wait, nil
}

// Accepted records that "accept" was written.
func (p *Predecessor) Accepted(now time.Time) {
	p.phase, p.deadline = PhaseAccepted, now.Add(TimeoutServing)
}

// Expired acts on a deadline that passed: an error before the successor
// took over, HandOver (with no receivers) after.
func (p *Predecessor) Expired(now time.Time) (Action, error) {
	if now.Before(p.deadline) {
		return Wait, nil
	}
	switch {
	case p.phase == PhaseServing:
		p.phase = PhaseDone
		return HandOver, nil
	case p.phase == PhaseAccepted:
		return Wait, fmt.Errorf("accepted, but it did not take over within %v", TimeoutServing)
	case p.Protocol == 0 && !p.known:
		return Wait, fmt.Errorf("no handoff hello within %v: not lancelot, or not one that can take over", TimeoutHello)
	}
	return Wait, fmt.Errorf("not ready within %v", TimeoutReady)
}

// ChannelEnded acts on the channel's end or the successor's exit: after
// "serving" the successor has taken over (HandOver, nothing to hand);
// before, it failed.
func (p *Predecessor) ChannelEnded(err error) (Action, error) {
	if p.phase == PhaseServing {
		p.phase = PhaseDone
		return HandOver, nil
	}
	return Wait, err
}

func (k ReportKind) String() string {
	switch k {
	case ReportPID:
		return linePID
	case ReportHello:
		return lineHello
	case ReportRefuse:
		return lineRefuse
	case ReportReady:
		return lineReady
	case ReportServing:
		return lineServing
	case ReportConns:
		return lineConns
	}
	return fmt.Sprintf("report %d", int(k))
}
