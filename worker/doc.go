// Package worker is one lancelot worker process: it serves the Launcelot
// protocol on the listening sockets its supervisor passes and lends it,
// reports to the supervisor over the control channel, answers its
// heartbeat, and stops when told to (TERM drains, QUIT closes at once) or
// when the supervisor disappears (EOF on the control channel).
//
// A worker never binds: the supervisor owns every listening socket, so a
// worker that dies never takes a socket, and the clients queued on it,
// down with it. A worker that stops accepting first accepts whatever is
// already queued (sweep), because its copy may be the socket's last; a
// socket taken back (Unlisten) is dropped without that, since the
// supervisor keeps it and lends it on.
//
// The engine is EventLoop: one epoll loop per GOMAXPROCS, an idle
// connection a small struct indexed by its descriptor, reads into a buffer
// shared by the loop, deadlines in a heap per loop. It is what makes a
// worker as cheap as the C reference (docs/benchmarks.md). Every serving
// loop acknowledges the heartbeat itself (Alive), so a stuck loop is found
// out even while the rest of the process looks healthy.
//
// Process.Run is the process: one owner loop selects over the stop
// signals, the supervisor's messages (read by one goroutine), heartbeat
// acknowledgements, the drain's deadline and the engine's end, and alone
// acts on the engine; a reason to stop is a value (see stop), so the stop
// sequence reads in one place.
//
// Protocol and limits: framing by protocol.Next; the idle timeout between
// questions, the read timeout from a question's first byte to its '?' (and
// from the accept to a connection's first byte), the write timeout for a
// blocked answer; a cap on connections (the one silent longest is shed for
// a newcomer, idle timeouts shrink above nine tenths of it), a cap per
// client address, and the PROXY protocol for peers trusted to send it.
// A connection whose write blocks is not read until it drains, and what
// such connections hold (unwritten answers, unanswered input) stays within
// a budget per worker, MaxPendingBytes: over it, the one holding the most
// is closed (see pending.go).
// What it closes is counted by reason and summarized in the log once per
// interval; every close is logged only at debug level, through a log that
// never blocks (asynclog). Shutdown stops accepting, keeps serving open
// connections until the shutdown timeout, then closes each at its next
// question boundary, the idle ones spread over a short window.
//
// Handover: connections outlive the process. The supervisor passes a
// worker one end of a handover channel (control.TypeHandOver; see package
// handover) to send into or receive from. A sending worker's loops, the
// owners of its connections, pick every connection at a question boundary
// with nothing left to write (a blocked write finishes first, bounded by
// the write timeout) — for a rebalance, 1/share of the idle ones — and
// send them in batches with their state: the partial question in `in`,
// the phase, the PROXY client address, how long the current deadline has
// run. A loop blocks while its batch is in flight; it closes a connection
// only once the ack takes it (unregistering it from epoll first: the
// registration lives as long as any process holds the socket), serves on
// one the receiver refused, and closes the batch of a channel that broke
// after sending, counting them as failures. A stopping worker that handed
// over everything has nothing to drain and exits at once. A receiving
// worker's Adopt admits connections within MaxConnections and
// MaxConnectionsPerSource and gives them to its loops, which serve them
// with this worker's configuration. A refusal for a limit keeps the
// connection off that channel only; one as stopping is offered again,
// since a receiver told to stop before it is told where to forward
// refuses meanwhile. A stopped worker that hands every connection on
// (it forwards) still adopts, and its empty loops wait while a sender
// may hand it more (see mayLeave), so connections follow a chain of
// retirements (a TTOU or USR2 right behind a HUP) instead of stranding
// on its first link. Invariants: a connection is read by one process at
// a time; no byte is lost, repeated or reordered; a handover never holds
// a loop longer than the channel's deadlines; a forwarding worker
// outlives its senders by no more than its own drain deadline.
//
// Not a public API: this package serves the lancelot binary only.
package worker
