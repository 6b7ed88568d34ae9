// Package handoff is how one lancelot process starts another and hands it
// descriptors: the supervisor starting a worker (the control channel and
// the listening sockets), and a supervisor starting its successor in a
// binary upgrade (every listening socket and a readiness pipe). Each
// handshake's encoder and decoder live side by side here, so the
// descriptor order, the environment and the counts are written down once.
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
