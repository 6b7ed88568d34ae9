// Package supervisor is lancelot's parent process. It owns the listening
// sockets and the workers' lives.
//
// Model. The supervisor holds one SO_REUSEPORT listening socket per worker
// slot for its whole life, as a raw close-on-exec descriptor, and starts each
// slot's worker by re-executing its own binary with that socket (and a
// control channel) passed as inherited descriptors. Linux resets the
// connections queued on a listening socket when its last descriptor closes,
// so a socket must outlive every worker that accepts on it: a crashed
// worker's replacement inherits the same socket and the queued clients are
// served, not reset. A socket whose slot was removed (TTOU) stays open and is
// served by a surviving slot, for the same reason.
//
// One goroutine, Run's loop, owns all state: the slots, the workers, the
// queue of rollouts (HUP, TTIN, TTOU) and the upgrade in flight. Other
// goroutines only send it events: a worker became ready, a worker exited, a
// signal arrived, a timer fired. The loop is also the only goroutine that
// creates sockets and starts processes, because go_reuseport v1.5.0 holds a
// new socket without close-on-exec for a moment and a child started then
// would inherit it.
//
// Invariants:
//   - every socket is served by at least one ready worker, except while its
//     only slot's worker is restarting (at most the crash backoff, capped at
//     one second, so queued clients wait rather than time out);
//   - a worker is retired (drained) only after its replacement is ready;
//   - at most one rollout and one binary upgrade are in flight.
//
// Not a public API: this package serves the lancelot binary only.
package supervisor
