// Package worker is one lancelot worker process: it serves the Launcelot
// protocol on the listening sockets its supervisor passed it, reports to the
// supervisor over the control channel, and stops when told to (TERM drains,
// QUIT closes at once) or when the supervisor disappears (EOF on the control
// channel).
//
// A worker never binds: the supervisor owns every listening socket for its
// whole life, so a worker that dies never takes a socket, and the clients
// queued on it, down with it. A worker that stops accepting first accepts
// whatever is already queued (sweepQueue), because its copy may be the
// socket's last.
//
// Two engines implement Engine with the same behaviour, checked by the same
// tests (engines_test.go):
//   - EventLoop, the default: one epoll loop per GOMAXPROCS, an idle
//     connection a small struct indexed by its descriptor, reads into a
//     buffer shared by the loop, deadlines in a heap per loop. It is what
//     makes a worker as cheap as the C reference (docs/benchmarks.md).
//   - Server: a goroutine per connection on the net package, the simple
//     reference (LANCELOT_ENGINE=goroutine selects it).
//
// Both frame with protocol.Next and follow the contract's deadlines: the
// idle timeout between questions, the read timeout from a question's first
// byte to its '?', and the write timeout for a blocked answer. Shutdown stops
// accepting, keeps serving open connections until the shutdown timeout,
// then closes each at its next question boundary.
//
// Not a public API: this package serves the lancelot binary only.
package worker
