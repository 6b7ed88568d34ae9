// Package handoff is how one lancelot process starts another and hands it
// descriptors: the supervisor starting a worker (the control channel and
// the listening sockets), and a supervisor starting its successor in a
// binary upgrade (every listening socket and the handoff channel). Each
// handshake's encoder and decoder live side by side here, so the
// descriptor layout, the environment and the counts are written down once.
//
// The upgrade handoff (protocol.go, upgrade.go, predecessor.go). Its model:
// two supervisors, the predecessor that serves and the successor it
// starts from the binary on disk, through a launcher that exits at once
// (so the successor is systemd's child). The successor finds the sockets
// and the channel as the descriptor layout says, and the variables of the
// environment table; it picks the newest protocol version both speak from
// the predecessor's offer, and each side asks that version what it can do
// (Can), never whether it is at least some number. Invariants:
//   - exactly one side serves as the service's main process at any time:
//     the successor writes the pid file and tells systemd MAINPID= only
//     after the predecessor's "accept", and a predecessor that takes an
//     accept back (the successor silent past TimeoutServing) first kills
//     the successor and waits until it is gone;
//   - the predecessor's side is one state machine (Predecessor) that
//     decides the order and the deadlines, from one timeout table; its
//     owner (the supervisor's loop) only feeds it reports and the clock;
//   - either side can refuse with a reason, at any point before "serving";
//   - which sockets came from systemd (socket activation) travels with the
//     sockets, so every successor leaves their addresses to the socket
//     unit; from a release that does not say, it is read from what the
//     kernel shows (inferActivated);
//   - descriptors on the channel travel only with a line that announces
//     them ("conns K"), and are read with recvmsg, never a plain read that
//     would let the kernel drop them; all duplication goes through
//     DupCloexec, which leaves the shared O_NONBLOCK flag alone.
//
// Children are started with the operator's signals (USR1, USR2, TTIN,
// TTOU) blocked, and discard them first thing (IgnoreOperatorSignals): a
// signal meant for the supervisor that reaches a child before the child's
// Go runtime could handle it — `systemctl kill` signals every process of
// the unit, a terminal signals its process group — must not kill it (USR2)
// or stop it (TTIN, TTOU). HUP cannot be blocked that way (see Start).
//
// Not a public API: this package serves the lancelot binary only.
package handoff
