package handoff

import (
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// operatorSignals are the signals an operator sends the supervisor to
// change it, none of which should stop any other lancelot process.
func operatorSignals() []syscall.Signal {
	return []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTTIN, syscall.SIGTTOU}
}

// Spawner starts child processes so that an operator signal reaching a
// child before its runtime can handle it does no harm, and owns this
// process's subscription to those signals, which that requires. Its zero
// value is ready to use.
//
// Two mechanisms, because Go treats the signals differently:
//   - USR1, USR2, TTIN and TTOU are blocked in the child (the mask is
//     inherited through fork and exec) until IgnoreOperatorSignals
//     discards them.
//   - HUP cannot stay blocked: a Go runtime unblocks it at start and dies
//     of it. But a Go runtime leaves an inherited SIG_IGN for HUP alone, and
//     a forked child keeps SIG_IGN only for signals its parent ignores, so
//     Start ignores HUP for the moment of the fork and subscribes again
//     right after. A HUP arriving in that moment is lost; a rollout is
//     already starting a child then, so at worst a second reload
//     requested within microseconds of the first is merged with it.
type Spawner struct {
	mu  sync.Mutex
	hup []chan<- os.Signal // channels subscribed to HUP through Notify
}

// Notify is signal.Notify, remembering HUP subscriptions so Start can
// restore them.
func (sp *Spawner) Notify(c chan<- os.Signal, sigs ...os.Signal) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if slices.Contains(sigs, os.Signal(syscall.SIGHUP)) && !slices.Contains(sp.hup, c) {
		sp.hup = append(sp.hup, c)
	}
	signal.Notify(c, sigs...)
}

// Stop is signal.Stop.
func (sp *Spawner) Stop(c chan<- os.Signal) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.hup = slices.DeleteFunc(sp.hup, func(x chan<- os.Signal) bool { return x == c })
	signal.Stop(c)
}

// Start starts cmd as described on Spawner. The signal mask is a thread's:
// this goroutine keeps its thread while it blocks them, and the runtime
// restores that thread's mask in the child after the fork.
func (sp *Spawner) Start(cmd *exec.Cmd) error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var set, old unix.Sigset_t
	for _, s := range operatorSignals() {
		sigaddset(&set, s)
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, &old); err == nil {
		defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	}
	if len(sp.hup) > 0 {
		signal.Ignore(syscall.SIGHUP)
		defer func() {
			for _, c := range sp.hup {
				signal.Notify(c, syscall.SIGHUP)
			}
		}()
	}
	return cmd.Start()
}

func sigaddset(set *unix.Sigset_t, sig syscall.Signal) {
	n := uint(sig) - 1
	set.Val[n/64] |= 1 << (n % 64)
}

// IgnoreOperatorSignals discards the operator signals that reached this
// process while its parent's Spawner kept them blocked, and ignores them
// from now on. A supervisor subscribes to them again afterwards (Notify
// undoes Ignore).
func IgnoreOperatorSignals() {
	for _, s := range operatorSignals() {
		signal.Ignore(s)
	}
}
