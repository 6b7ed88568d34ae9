// Package protocol is the client-facing Launcelot codec: where a question
// starts and ends on the wire, which bytes are allowed in it, how long it may
// grow, and which answer it gets. It does no I/O and keeps no connection
// state, so the worker engine, the load generator and the fuzzer all share the
// one definition of a frame.
//
// The wire format: a question is the bytes from its first non-whitespace byte
// up to and including the next '?'; ASCII whitespace (space, tab, CR, LF)
// between questions is skipped. An answer is sent back verbatim and ends in
// '.'. There is no other framing.
//
// Not a public API: this package serves the lancelot binary only.
package protocol
