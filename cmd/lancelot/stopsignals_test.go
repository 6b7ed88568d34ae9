package main

import (
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/shared/lancelottest"
)

// TestSignalsOnTheWayOut hammers the race of a signal that arrives while
// a process is already leaving, as `systemctl kill -s QUIT` (every process
// of the unit) repeated would: TERM to the supervisor; once it logs that
// it is stopping, and a random 0–25 ms later, QUIT and TERM to the
// supervisor and each worker every few hundred microseconds until it
// exits. Workers without clients drain in milliseconds and the supervisor
// stops soon after, so the signals land before, during and after their
// exit paths. Every try must exit with status 0, each worker too (never
// the runtime's status 2, never killed by the signal), and leave nothing
// but log records: no goroutine dump.
func TestSignalsOnTheWayOut(t *testing.T) {
	t.Parallel()
	skipIfShort(t)
	const tries, parallel = 16, 2
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	for i := range tries {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t.Run("", func(t *testing.T) { signalsOnTheWayOut(t, i) })
		}()
	}
	wg.Wait()
}

// signalsOnTheWayOut is one try: a server with one client (one worker
// drains it, the other has nothing to drain), TERM, a random delay, then
// the storm.
func signalsOnTheWayOut(t *testing.T, try int) {
	s := startServer(t, "--workers", "2", "--shutdown-timeout", "30s")
	workers := s.workerPIDs()
	// pidfds: a pid that exits and is reused is never signalled.
	var fds []int
	for _, pid := range append([]int{s.cmd.Process.Pid}, workers...) {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			t.Fatalf("pidfd_open %d: %v", pid, err)
		}
		defer unix.Close(fd)
		fds = append(fds, fd)
	}
	c := lancelottest.Dial(t, s.addr)
	c.Send(lancelottest.QName)
	c.Expect(lancelottest.AName)
	delay := time.Duration(rand.IntN(26)) * time.Millisecond
	s.signal(syscall.SIGTERM)
	// Not before: a worker that QUIT stops while the supervisor serves
	// is replaced, and the replacement may get the supervisor's QUIT
	// before its runtime can catch it.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(s.logs.String(), `msg="supervisor stopping"`); {
		if time.Now().After(deadline) {
			t.Fatalf("try %d: no \"supervisor stopping\" within 5 s of TERM", try)
		}
		time.Sleep(300 * time.Microsecond) // a tight poll: the race is milliseconds long
	}
	time.Sleep(delay) // the race's random phase, not a wait for a condition
	storm(s, fds)
	if err := s.wait(5 * time.Second); err != nil {
		t.Errorf("try %d: exit after TERM, then signals from %v after stopping: %v, want status 0", try, delay, err)
	}
	lancelottest.WaitFor(t, time.Second, "no worker left", func() bool { return !anyAlive(workers) })
	logs := s.logs.String()
	checkLogRecords(t, logs)
	if strings.Contains(logs, "goroutine ") || strings.Contains(logs, "killed by") {
		t.Errorf("try %d (signals from %v after stopping): a goroutine dump, or a worker killed by a signal", try, delay)
	}
	if n := strings.Count(logs, `status="exit status 0"`); n != len(workers) {
		t.Errorf("try %d (signals from %v after stopping): %d worker exits with status 0 logged, want %d", try, delay, n, len(workers))
	}
}

// storm sends QUIT and TERM in turn to every process of fds, every 300 µs,
// until the supervisor (fds[0]) has exited, for at most 5 s.
func storm(s *server, fds []int) {
	sigs := []unix.Signal{unix.SIGQUIT, unix.SIGTERM}
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; !s.hasExited() && time.Now().Before(deadline); i++ {
		for _, fd := range fds {
			unix.PidfdSendSignal(fd, sigs[i%len(sigs)], nil, 0)
		}
		time.Sleep(300 * time.Microsecond)
	}
}
