// Package loadgen is the Launcelot load generator behind `lancelot bench`,
// also used by integration tests to keep a load on a server while it
// reloads and to count what failed.
//
// The model: a load is C client connections against one server on this
// machine, in one of three modes.
//   - Persistent: each connection asks the three questions in turn, forever,
//     keeping Pipeline questions in flight.
//   - Book: each client connects, asks the three questions one by one and
//     closes, then starts over (the book's client).
//   - Idle: C connections each ask once and then stay open, idle, while a few
//     persistent probe connections measure latency.
//
// Every answer is compared byte for byte with the table's; each failure is
// counted under one ErrorKind (the first few are also kept as Examples) and
// the connection is replaced. A reset before a connection's first answer
// counts apart, as ResetQueued: most often a client still queued on a
// listening socket when it closed, which a server's stop may legitimately
// cause. Latency is one HDR histogram sample per exchange, question written
// to answer read.
//
// A load runs in two phases: setup (idle mode opens its connections) and the
// timed phase (Duration long, or until the context is cancelled or Stop is
// called). It targets loopback addresses only.
//
// Scale: one process can hold as many connections as RLIMIT_NOFILE allows
// (the soft limit is raised to the hard one). Beyond that, the load is split
// into shares run by child processes started with Config.ChildArgs, which
// must run ServeChild; their counts and histograms are merged into one
// Result. Past 10,000 connections, connections are spread over the source
// addresses 127.0.0.1..127.0.0.N, because Linux slows sharply when one source
// address carries more than about 14k connections to one server.
//
// Its child processes (StartChildren, ServeShare), Histogram and Dialer
// also carry cmd/hostile's attacks, which hold connections rather than ask.
//
// Internal to cmd/: it serves the lancelot binary and its tests,
// cmd/hostile and cmd/benchplot.
package loadgen
