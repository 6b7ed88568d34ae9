// Package supervisor is lancelot's parent process. It owns the listening
// sockets and the workers' lives.
//
// Model. The supervisor holds every SO_REUSEPORT listening socket of the
// group for its whole life, as a raw close-on-exec descriptor. Linux
// resets the connections queued on a listening socket when its last
// descriptor closes, so the supervisor's copy is what lets a socket outlive
// any worker: clients queued on it wait, they are never reset. Each worker
// slot is home to some sockets (normally one; a slot removed by TTOU
// leaves its socket to a survivor), and the slot's worker is started with
// them. A worker's set of sockets also changes while it runs: the
// supervisor lends it another socket over the control channel (SCM_RIGHTS)
// and takes it back later.
//
// The invariant. Every listening socket of the group has at least one
// live, ready worker accepting on it, at all times. reconcile restores it
// after every event: a socket whose home worker is down — crashed and
// backing off, late with a heartbeat answer, hung and killed, failed to
// start, retired — is lent to the accepting worker with the fewest sockets,
// and taken back once its home worker is ready (or answers again). The only
// exceptions: the moment between a worker's death being noticed and its
// socket reaching the borrower (milliseconds), a stopped worker's first
// missed heartbeat answer (at most two heartbeat intervals: a second), the
// first start, where a socket waits for its own worker unless that worker
// fails (so a normal start lends nothing), and a service with no accepting
// worker at all (a single worker crashing); clients queue meanwhile.
//
// Lateness. A ready worker is asked for a heartbeat every interval
// (min(--worker-timeout/4, 0.5 s)); one whose answer has not come by the
// next request is late: it keeps its own sockets (nothing is lost if it
// was only slow), they are lent to an accepting worker too, and it is asked
// every 0.25 s, so that its first answer ends the loans. Still silent at
// --worker-timeout, it is killed.
//
// Consequences: a crash loop costs clients only the crashed workers' own
// connections (backoff protects the machine, not the clients; when no
// worker is left serving, a slot whose worker had been ready skips it, so
// clients wait for a worker's start, not a backoff); a hung
// worker, one whose serving loops miss the heartbeat for --worker-timeout,
// is killed and replaced while its sockets are served elsewhere; a new
// worker that never becomes ready leaves no socket unserved.
//
// One goroutine, Run's loop, owns all state: the sockets, the slots, the
// workers, the queue of rollouts (HUP, TTIN, TTOU) and the upgrade in
// flight. Other goroutines only send it events (a worker is ready, answered
// a heartbeat, exited; the successor is ready) and requests (signals,
// Reload). The loop is also the only goroutine that creates sockets and
// starts processes, so that which descriptors a child inherits is decided
// in one place: go_reuseport, which creates the sockets, leaves each
// inheritable for a moment (see bindSocket). The loop reaches the operating system only through env, so the model
// test runs it against fake workers and a fake clock.
//
// Other invariants:
//   - a worker is retired (drained) only after its replacement is ready;
//   - at most one rollout and one binary upgrade are in flight;
//   - the running worker count is what the signals asked for: the
//     configured count (command line and file) changes it only when a HUP
//     finds it changed, and a binary upgrade hands both counts over;
//   - a stop always ends: draining workers are killed at their deadline.
//
// Not a public API: this package serves the lancelot binary only.
package supervisor
