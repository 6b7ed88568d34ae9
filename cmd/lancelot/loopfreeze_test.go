package main

// A hung worker for real: its event loops stop while the rest of the
// process, the Go runtime included, runs on. A loop waits in epoll_wait on
// its own epoll descriptor, on the thread its goroutine holds for the
// syscall; stopping that thread with ptrace (PTRACE_SEIZE, then
// PTRACE_INTERRUPT, which stops one thread, not the process as SIGSTOP
// does) leaves the loop's goroutine in its syscall for good, as a loop
// stuck anywhere else would be. The runtime still handles signals on the
// other threads, so it can still write a stack dump.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// loopFreezer holds a worker's loop threads stopped. Every ptrace request
// must come from the thread that attached, so one goroutine locked to its
// thread makes them all; when it ends, its thread ends too, and the kernel
// detaches whatever that thread still traced.
type loopFreezer struct {
	pid  int
	reqs chan func()
	done chan struct{}
	tids []int // traced threads, stopped in their loop's epoll_wait
}

// freezeLoops stops every event loop of worker pid, whose loops listen on
// port; it fails the test if it cannot within 5 s, and skips it (fails
// under LANCELOT_REQUIRE_TOOLS=1) without the right to ptrace. The threads
// are released when the test ends, if they have not exited by then.
func freezeLoops(t *testing.T, pid, port int) *loopFreezer {
	t.Helper()
	f := &loopFreezer{pid: pid, reqs: make(chan func()), done: make(chan struct{})}
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with us
		defer close(f.done)
		for req := range f.reqs {
			req()
		}
	}()
	t.Cleanup(f.release)
	var err error
	f.do(func() { err = f.freeze(t, port) })
	if errors.Is(err, unix.EPERM) {
		skipOrFail(t, "ptrace not permitted here: %v", err)
	}
	if err != nil {
		t.Fatalf("stop worker %d's event loops: %v", pid, err)
	}
	return f
}

func (f *loopFreezer) do(req func()) {
	ran := make(chan struct{})
	f.reqs <- func() { req(); close(ran) }
	<-ran
}

// freeze stops, for each loop's epoll descriptor, the thread waiting on it.
// A loop between two waits has no such thread: the next round finds it.
func (f *loopFreezer) freeze(t *testing.T, port int) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		epolls := loopEpolls(f.pid, listeningInodes(t, port))
		if len(epolls) == 0 {
			return fmt.Errorf("no epoll descriptor of pid %d watches a socket listening on port %d", f.pid, port)
		}
		frozen := map[int]bool{}
		for _, tid := range f.tids {
			if fd, ok := waitingOn(f.pid, tid); ok {
				frozen[fd] = true
			}
		}
		for _, tid := range threads(f.pid) {
			if fd, ok := waitingOn(f.pid, tid); ok && epolls[fd] && !frozen[fd] && !f.traces(tid) {
				if err := f.stop(tid, fd); err != nil {
					return err
				}
				frozen[fd] = f.traces(tid)
			}
		}
		if len(frozen) >= len(epolls) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d loops stopped within 5 s", len(frozen), len(epolls))
		}
		runtime.Gosched() // this goroutine keeps its thread: yield, then look again
	}
}

// stop seizes tid and stops it; it keeps it only if it is still waiting on
// epoll fd once stopped (its loop may have gone around meanwhile).
func (f *loopFreezer) stop(tid, fd int) error {
	if err := unix.PtraceSeize(tid); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil // it ended
		}
		return fmt.Errorf("PTRACE_SEIZE %d: %w", tid, err)
	}
	if err := unix.PtraceInterrupt(tid); err != nil {
		return fmt.Errorf("PTRACE_INTERRUPT %d: %w", tid, err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(tid, &ws, unix.WALL, nil); err != nil {
		return fmt.Errorf("wait for %d to stop: %w", tid, err)
	}
	if !ws.Stopped() {
		return nil // it exited
	}
	if now, ok := waitingOn(f.pid, tid); !ok || now != fd {
		unix.PtraceDetach(tid)
		return nil
	}
	f.tids = append(f.tids, tid)
	return nil
}

func (f *loopFreezer) traces(tid int) bool {
	for _, t := range f.tids {
		if t == tid {
			return true
		}
	}
	return false
}

// waitExit reports whether every stopped thread exited (the process ended:
// a thread stopped by ptrace dies only with it) within timeout, and reaps
// them: a traced thread that exits waits for its tracer, and the worker's
// parent cannot reap the worker before.
func (f *loopFreezer) waitExit(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		var left []int
		f.do(func() {
			for _, tid := range f.tids {
				var ws unix.WaitStatus
				wpid, err := unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
				if err == nil && wpid == tid && (ws.Exited() || ws.Signaled()) {
					continue
				}
				if errors.Is(err, unix.ECHILD) {
					continue
				}
				left = append(left, tid)
			}
			f.tids = left
		})
		if len(left) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// release lets the stopped threads go and reaps those that exited; it is
// idempotent.
func (f *loopFreezer) release() {
	select {
	case <-f.done:
		return
	default:
	}
	f.do(func() {
		for _, tid := range f.tids {
			for {
				// Detaching fails for a thread that is exiting: then the
				// wait reaps it. After a detach the wait finds nothing.
				unix.PtraceDetach(tid)
				var ws unix.WaitStatus
				if _, err := unix.Wait4(tid, &ws, unix.WALL, nil); err != nil || !ws.Stopped() {
					break
				}
			}
		}
		f.tids = nil
	})
	close(f.reqs)
	<-f.done
}

// loopEpolls are pid's epoll descriptors that watch a listening socket
// (listening, by inode): the event loops'. The Go runtime's own poller
// watches the control channel, never a listener.
func loopEpolls(pid int, listening map[string]bool) map[int]bool {
	out := map[int]bool{}
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	for _, p := range fds {
		if link, _ := os.Readlink(p); link != "anon_inode:[eventpoll]" {
			continue
		}
		fd, _ := strconv.Atoi(filepath.Base(p))
		info, _ := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
		for _, line := range strings.Split(string(info), "\n") {
			fields := strings.Fields(line)
			if len(fields) < 2 || fields[0] != "tfd:" {
				continue
			}
			link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fields[1]))
			if inode, ok := strings.CutPrefix(link, "socket:["); ok && listening[strings.TrimSuffix(inode, "]")] {
				out[fd] = true
			}
		}
	}
	return out
}

// threads are pid's thread ids.
func threads(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	for _, p := range tasks {
		if tid, err := strconv.Atoi(filepath.Base(p)); err == nil {
			out = append(out, tid)
		}
	}
	return out
}

// waitingOn returns the first argument of the syscall thread tid of pid is
// blocked in: for an epoll wait, the epoll descriptor. (The syscall's
// number is not checked: which epoll wait a loop uses depends on the
// architecture, and no other syscall blocks on an epoll descriptor.) ok is
// false for a thread that runs, or is in no syscall.
func waitingOn(pid, tid int) (fd int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/syscall", pid, tid))
	fields := strings.Fields(string(b))
	if err != nil || len(fields) < 2 || fields[0] == "running" || fields[0] == "-1" {
		return 0, false
	}
	arg, err := strconv.ParseInt(strings.TrimPrefix(fields[1], "0x"), 16, 64)
	return int(arg), err == nil
}
