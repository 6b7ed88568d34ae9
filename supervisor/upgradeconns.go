package supervisor

import (
	"errors"
	"fmt"
	"os"

	"github.com/camelot/lancelot/shared/control"
)

// The connection handover of a binary upgrade (handoff protocol 3): after
// "serving", the successor sends its predecessor, over the handoff
// channel, the sending ends of handover channels whose receiving ends its
// own workers hold, and the predecessor passes them to its retiring
// workers before it stops them. From there on it is a handover like a
// reload's (reason upgrade): each old worker hands every connection over
// at a question boundary and exits once it holds nothing, and the old
// supervisor exits once its workers are gone. There are as many ends as
// the larger of the two worker counts, so that every old worker gets one
// and every new worker receives.

// errNoReceivers is upgradeConnReceivers' error when not one of its
// workers could take a receiving end.
var errNoReceivers = errors.New("no worker took a receiving end")

// upgradeConnReceivers returns, in a successor that has taken over, the
// ends to send its predecessor; takeOver sends them after "serving" (when
// the predecessor's protocol can take them) and closes its copies. None
// with --handover=off: the predecessor drains its connections.
func (s *Supervisor) upgradeConnReceivers() ([]*os.File, error) {
	if !s.cfg.HandoverOn() {
		s.log.Info("binary upgrade: --handover=off: the old supervisor's open connections are drained, not handed over")
		return nil, nil
	}
	to := s.survivors()
	if len(to) == 0 {
		return nil, errNoReceivers
	}
	n := len(to)
	if u := s.opts.Upgrade; u != nil {
		n = max(n, u.Running)
	}
	var ends []*os.File
	var errs []error
	for i := range n {
		end, err := s.receiveEnd(to[i%len(to)])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ends = append(ends, end)
	}
	if len(ends) == 0 {
		return nil, fmt.Errorf("%w: %w", errNoReceivers, errors.Join(errs...))
	}
	s.log.Info("binary upgrade: the old supervisor's workers hand their connections to ours", "channels", len(ends), "workers", len(to))
	return ends, nil
}

// receiveEnd creates a handover channel, gives w its receiving end and
// returns the sending end.
func (s *Supervisor) receiveEnd(w *worker) (*os.File, error) {
	if !w.healthy() {
		return nil, fmt.Errorf("worker %d is gone", w.proc.pid())
	}
	if s.env.handoverPair == nil {
		return nil, errNoHandover
	}
	send, receive, err := s.env.handoverPair()
	if err != nil {
		return nil, err
	}
	defer receive.Close()
	if err := s.passHandoverEnd(w, control.RoleReceive, control.ReasonUpgrade, 0, receive); err != nil {
		send.Close()
		return nil, err
	}
	return send, nil
}

// handOverToSuccessor gives the predecessor's retiring workers the
// successor's connection receivers, end i to worker i mod n, and closes
// its copies; handOver calls it right before the graceful stop, which
// then stops them as usual. Without ends (a successor that cannot take
// connections, or runs with --handover=off), or with --handover=off here,
// the workers drain as before.
func (s *Supervisor) handOverToSuccessor(ends []*os.File) {
	defer closeFiles(ends)
	from := s.survivors()
	// Without ends, handOver or the new supervisor already said why.
	switch {
	case len(ends) == 0:
		return
	case !s.cfg.HandoverOn():
		s.log.Info("binary upgrade: --handover=off: open connections are drained, not handed over")
		return
	case len(from) == 0:
		return
	}
	started := 0
	for i, end := range ends {
		w := from[i%len(from)]
		if !w.healthy() {
			continue // lost while an earlier end was sent
		}
		if err := s.passHandoverEnd(w, control.RoleSend, control.ReasonUpgrade, 0, end); err != nil {
			s.log.Warn("binary upgrade: handover not started; the worker drains its connections", "err", err)
			continue
		}
		started++
	}
	s.log.Info("binary upgrade: handing open connections to the new supervisor's workers", "channels", started, "workers", len(from))
}
