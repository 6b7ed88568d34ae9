package main

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camelot/lancelot/cmd/internal/proc"
	"github.com/camelot/lancelot/shared/lancelottest"
)

// stallBound is how long a fresh client may wait while a worker is
// stopped: its socket is lent at the first missed heartbeat answer (within
// a second), plus a margin for a busy machine. A bound, not a benchmark
// (docs/bench/stall.sh measures).
const stallBound = 1500 * time.Millisecond

// TestStoppedWorkerFreshClients: with one of 2 workers stopped (SIGSTOP:
// a deadlock or a stuck syscall looks the same), every fresh client is
// answered within 1.5 s, though the kernel keeps hashing about half of
// them to the stopped worker's socket: the supervisor lends that socket to
// the other worker at the first missed heartbeat answer, long before
// --worker-timeout (10 s) kills it. Continued (SIGCONT), the worker keeps
// its socket, is not killed, and the loan ends. (0.3.0: the socket was
// lent only after the kill, so half the clients waited about 10 s.)
func TestStoppedWorkerFreshClients(t *testing.T) {
	maddr := "127.0.0.1:" + strconv.Itoa(lancelottest.FreePort(t))
	s := startServer(t, "--workers", "2", "--metrics", maddr)
	s.waitQuiet()
	stopped := slotWorkers(t, s)[1].pid
	t.Cleanup(func() { continueIfOurs(stopped) })
	if err := syscall.Kill(stopped, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	lancelottest.WaitFor(t, 5*time.Second, "every thread of the worker stopped", func() bool { return proc.AllThreadsStopped(stopped) })
	// Probe until the socket has been lent and a second of clients more,
	// so that clients both before and after the loan count; 5 s at most,
	// well before the kill.
	pr := startProbing(t, s.addr, 20*time.Millisecond, 3*stallBound)
	burst := probeBurst(s.addr, 20, 3*stallBound) // about half on the stopped worker's socket
	lent := lancelottest.Poll(5*time.Second-time.Since(stoppedAt), func() bool { return strings.Contains(s.logs.String(), "reason=late") })
	<-time.After(time.Second) // the load's margin past the loan
	all := append(burst, pr.stop()...)
	lat := make([]time.Duration, 0, len(all))
	slow := 0
	for _, p := range all {
		lat = append(lat, p.latency())
		if p.err != nil || p.latency() > stallBound {
			t.Errorf("%v; want an answer within %v while a worker is stopped", p, stallBound)
		}
		if p.latency() > 100*time.Millisecond {
			slow++
		}
	}
	q := quantiles(lat, 0.5, 0.99, 1)
	t.Logf("one of 2 workers stopped: %d fresh clients, p50 %v, p99 %v, max %v; %d waited > 100 ms; socket lent: %v",
		len(all), q[0], q[1], q[2], slow, lent)
	if slow == 0 {
		t.Errorf("no client waited on the stopped worker's socket: the test did not exercise it")
	}
	if err := syscall.Kill(stopped, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	s.waitFor(5*time.Second, "the loan ended (socket taken back)", func() bool {
		return strings.Contains(s.logs.String(), `msg="socket taken back"`)
	})
	if w := slotWorkers(t, s)[1]; w.pid != stopped || !w.ready {
		t.Errorf("slot 1 is %+v after SIGCONT, want the continued worker %d, ready", w, stopped)
	}
	m := scrape(t, maddr)
	if n := m[`lancelot_sockets_lent_total{reason="late"}`]; n < 1 {
		t.Errorf(`lancelot_sockets_lent_total{reason="late"} = %v, want at least 1`, n)
	}
	if n := m["lancelot_worker_timeouts_total"]; n != 0 {
		t.Errorf("lancelot_worker_timeouts_total = %v, want 0: the stopped worker was continued before --worker-timeout", n)
	}
}

// TestNormalStartLendsNothing: a start in which every worker starts lends
// no socket (0.3.0 logged `socket lent … reason="its workers are down"`
// just before `supervisor ready`, which an operator reads as a fault).
func TestNormalStartLendsNothing(t *testing.T) {
	s := startServer(t, "--workers", "4")
	s.waitFor(5*time.Second, "supervisor ready logged", func() bool { return strings.Contains(s.logs.String(), `msg="supervisor ready"`) })
	logs := s.logs.String()
	start := logs[:strings.Index(logs, `msg="supervisor ready"`)]
	if n := strings.Count(start, `msg="socket lent"`); n > 0 {
		t.Errorf("a normal start lent %d sockets before it was ready:\n%s", n, start)
	}
	if strings.Count(start, `msg="worker ready"`) != 4 {
		t.Errorf("want 4 workers ready before the supervisor, log:\n%s", start)
	}
}

// continueIfOurs sends SIGCONT to pid if it still runs the binary under
// test.
func continueIfOurs(pid int) {
	if args := proc.Cmdline(pid); proc.Alive(pid) && len(args) > 0 && args[0] == binPath {
		syscall.Kill(pid, syscall.SIGCONT)
	}
}
