// Package pid1 is what `lancelot serve` does when it runs as PID 1, the
// first process of a container: it is the container's init, and the
// supervisor runs as its child.
//
// Why. The kernel ends a PID namespace when its PID 1 exits, and only PID 1
// reaps the processes orphaned in it. A binary upgrade (USR2) replaces the
// supervisor by a new process and the old one exits: were the supervisor
// PID 1, the upgrade would end the container with it. So PID 1 stays a
// minimal init for the container's whole life, as systemd is for a unit:
//
//   - it starts the supervisor (the same binary, the same arguments) as its
//     child, with NOTIFY_SOCKET naming a datagram socket of its own;
//   - it learns which process is the current supervisor the way systemd
//     does: `MAINPID=` on that socket (a successor, started through a
//     launcher that exits at once, is re-parented to PID 1 and announces
//     itself there; its predecessor announces it first);
//   - it forwards every operator signal (TERM, INT, QUIT, HUP, USR1, USR2,
//     TTIN, TTOU) to the current supervisor, so each does what it does
//     under systemd;
//   - it reaps every process that exits in the namespace;
//   - it exits, with the current supervisor's exit status, when the current
//     supervisor exits (128+N when a signal N killed it), and the kernel
//     then ends whatever is left.
//
// When PID 1 itself was given a NOTIFY_SOCKET (a container engine that
// speaks sd_notify), it passes every notification on except MAINPID=: seen
// from outside, PID 1 is the main process.
//
// Invariants. One goroutine, Run's loop, owns the state: the current
// supervisor's pid and the exits it has reaped; a second goroutine only
// reads datagrams and hands them to the loop. A datagram is trusted only
// if the kernel names its sender (SO_PASSCRED) as a process of this PID
// namespace: the socket is abstract, and with `--network host` every
// process of the host could reach it. The exit of the current supervisor
// is acted on only after a barrier datagram, sent by the loop to its own
// socket, has come back: datagrams keep their order, so a MAINPID= sent
// before that exit (the old supervisor names its successor, then exits) is
// always seen first.
//
// Not a public API: it serves the lancelot binary only.
package pid1
