package handoff

import (
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// blockedSignals are the operator's signals a child starts with blocked:
// USR1, USR2, TTIN and TTOU, which a child's Go runtime leaves blocked
// until the child discards them (IgnoreOperatorSignals).
//
// HUP is not among them: a Go runtime unblocks HUP at start and dies of a
// pending one. A child would be protected only by inheriting an ignored
// HUP, which means ignoring it in the parent while the child starts — and
// losing the parent's own HUPs meanwhile (up to 140 ms under load, a
// lost reload each). A HUP sent to every process of the service may
// therefore kill a worker in the first milliseconds of its start; the
// supervisor starts such a worker again (see its rollout.go).
func blockedSignals() []syscall.Signal {
	return []syscall.Signal{syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTTIN, syscall.SIGTTOU}
}

// Start starts cmd with blockedSignals blocked in the child: a blocked
// signal waits, instead of killing (USR1, USR2) or stopping (TTIN, TTOU)
// the child, until its runtime is up and IgnoreOperatorSignals discards
// it. The mask is a thread's: this goroutine keeps its thread while it
// blocks them, and the runtime restores that thread's mask in the child
// after the fork.
func Start(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var set, old unix.Sigset_t
	for _, s := range blockedSignals() {
		n := uint(s) - 1
		set.Val[n/64] |= 1 << (n % 64)
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, &old); err == nil {
		defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	}
	return cmd.Start()
}

// IgnoreOperatorSignals ignores the operator's signals (HUP, USR1, USR2,
// TTIN, TTOU), discarding those that reached this process while Start
// kept them blocked. A supervisor subscribes to them again afterwards
// (signal.Notify undoes Ignore); a worker never does.
func IgnoreOperatorSignals() {
	signal.Ignore(syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTTIN, syscall.SIGTTOU)
}
