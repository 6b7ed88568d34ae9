// Package worker is one lancelot worker process: it serves the Launcelot
// protocol on the listening sockets its supervisor passed it, reports to the
// supervisor over the control channel, and stops when told to (TERM drains,
// QUIT closes at once) or when the supervisor disappears (EOF on the control
// channel).
//
// A worker never binds: the supervisor owns every listening socket for its
// whole life, so a worker that dies never takes a socket, and the clients
// queued on it, down with it.
//
// Connection model: a goroutine per connection reading into a bounded buffer;
// the framing is protocol.Next's. Deadlines follow the contract: the idle
// timeout between questions, the read timeout from a question's first byte
// to its '?', and the write timeout for each answer batch. Shutdown stops
// accepting, keeps serving open connections until the shutdown timeout, then
// closes each at its next question boundary.
//
// Not a public API: this package serves the lancelot binary only.
package worker
