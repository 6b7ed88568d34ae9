package supervisor

import "os"

// The connection handover of a binary upgrade (handoff protocol 3): after
// "serving", the successor sends its predecessor, over the handoff
// channel, the ends through which its workers receive connections, and
// the predecessor passes them to its retiring workers. These two hooks are
// where the workers' side plugs in.

// upgradeConnReceivers returns, in a successor that has taken over, the
// ends to send its predecessor; takeOver sends them after "serving" (when
// the predecessor's protocol can take them) and closes its copies. None
// yet: the predecessor drains its connections.
func (s *Supervisor) upgradeConnReceivers() ([]*os.File, error) {
	return nil, nil
}

// handOverToSuccessor gives the predecessor's retiring workers the
// successor's connection receivers (none from a successor that cannot
// take connections); handOver calls it right before the graceful stop.
// Until the workers can pass connections, it closes them, and the workers
// drain as before.
func (s *Supervisor) handOverToSuccessor(ends []*os.File) {
	closeFiles(ends)
}
