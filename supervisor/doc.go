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
// inheritable for a moment (see bindSocket). The loop reaches the
// operating system only through env, so the model test runs it against
// fake workers and a fake clock. Beside the loop, a
// sampler asks the live workers for their counters every statsInterval,
// for the per-worker figures of Status (open connections, questions per
// second); like a metrics scrape it only reads the workers and writes the
// metrics state, never the loop's.
//
// Handovers (handover.go). A worker that goes away hands its open
// connections to a live one instead of draining them: on a reload, the
// retiring worker to its slot's new worker once that is ready
// (reason reload); on a scale-down, the removed slot's worker to every
// surviving worker, one channel each (scale_down); on a scale-up, every
// existing worker hands the new one 1/n of its idle connections
// (rebalance). The loop only pairs workers, with startHandover: it passes
// each one end of a new channel over their control channels, then retires
// the sender as before; the workers do the rest between themselves, so a
// handover never blocks the loop, and a failed one costs only the
// connections in flight. The retired worker exits once it holds nothing;
// its drain deadline still bounds it. --handover=off skips the pairing. A
// receiver retired in turn (a TTOU or an upgrade right behind a reload)
// goes on taking from its senders and passes what it takes on through its
// own handover: the workers forward along the chain, so the loop pairs
// only the worker it retires. A receiver that exits while senders still
// hand to it (it crashed, or was killed) leaves them a channel to each
// survivor (rePair), so what they hold moves on instead of draining.
//
// Binary upgrades. The loop drives the predecessor's side of the handoff
// (handoff.Predecessor) with what the successor says and the clock, and
// carries out its actions: accept, refuse, hand over. A USR2 during a
// rollout waits for the rollout to end (every socket it opens is handed
// over), and rollouts wait for an upgrade in flight. A successor that was
// accepted may be taking over: a stop lets it, and a refusal kills it and
// waits until it is gone before taking the pid file and systemd's main pid
// back. The successor tells its predecessor "serving" with the ends its
// workers receive connections on (upgradeConnReceivers: one handover
// channel per end, as many as the larger of its healthy workers and the
// predecessor's running count, receiving sides given to its workers
// round-robin, reason upgrade); the predecessor gives end i to its
// retiring worker i mod n as a sending side (handOverToSuccessor) and
// stops them as usual: each hands every connection over at a question
// boundary and exits once it holds nothing, and the supervisor exits when
// its workers are gone. Every end's copy in either supervisor is closed
// once sent. With a successor whose protocol cannot take connections, or
// --handover=off on either side, there are no ends and the workers drain,
// as the log says. Sockets
// systemd passed (to this supervisor or any predecessor) are marked
// activated: while any is, a reload never binds or retires an address.
//
// Other invariants:
//   - a worker is retired (drained) only after its replacement is ready;
//   - at most one rollout and one binary upgrade are in flight, never both
//     starting: each waits for the other;
//   - the running worker count is what the signals asked for: the
//     configured count (command line and file) changes it only when a HUP
//     finds it changed, and a binary upgrade hands both counts over, and
//     every request that waited for it, on the handoff channel (signals
//     of a kind merge: forwardRequests, passedOn);
//   - a stop always ends: draining workers are killed at their deadline;
//   - outside a full stop, a retired worker that holds connections hands
//     them along a chain of channels to a live worker (or the successor),
//     unless a worker on that chain died; one that has nowhere to hand
//     them waits for the next worker ready (pairOrphans). The model test
//     (model_handover_test.go) checks this after every step.
//
// Not a public API: this package serves the lancelot binary only.
package supervisor
