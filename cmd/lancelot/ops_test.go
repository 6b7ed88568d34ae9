package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/camelot/lancelot/cmd/internal/loadgen"
	"github.com/camelot/lancelot/cmd/internal/proc"
	"github.com/camelot/lancelot/shared/lancelottest"
	"github.com/camelot/lancelot/supervisor"
)

// Each transition of the signal table (docs/reference.md) runs under a
// continuous load of book-style and long-lived clients and must not cost a
// single connection or question. The tests follow the supervisor through
// `lancelot status`: a signal is counted in the event that acts on it, so a
// settled status that counts it shows the transition done.

func TestReloadUnderLoad(t *testing.T) {
	s := startServer(t, "--workers", "2")
	l := startLoad(t, s.addr, 8, 8)
	l.waitExchanges(1000)
	before := s.workerPIDs()
	start := time.Now()
	s.signal(syscall.SIGHUP)
	s.waitHandled("HUP", 1)
	t.Logf("HUP: every worker replaced in %v", time.Since(start))
	l.waitExchanges(1000)
	l.requireNoFailures()
	after := s.workerPIDs()
	if len(after) < 2 || len(common(s.servingPIDs(), before)) > 0 {
		t.Errorf("workers before HUP %v, serving after %v: want every worker replaced", before, s.servingPIDs())
	}
}

// TestReloadChangesWorkerCount reloads once by HUP and once through
// `lancelot reload`, which returns once the reload is done (the admin
// socket's way to the same rollout).
func TestReloadChangesWorkerCount(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "lancelot.yaml")
	writeFile(t, cfg, "workers: 2\n")
	s := startServer(t, "--config", cfg)
	l := startLoad(t, s.addr, 8, 8)
	l.waitExchanges(1000)
	writeFile(t, cfg, "workers: 3\n")
	start := time.Now()
	s.signal(syscall.SIGHUP)
	s.waitHandled("HUP", 1)
	t.Logf("HUP 2->3 workers took %v", time.Since(start))
	s.waitFor(5*time.Second, "3 serving workers", func() bool { return len(s.servingPIDs()) == 3 })
	writeFile(t, cfg, "workers: 1\n")
	start = time.Now()
	s.reload()
	t.Logf("reload 3->1 workers took %v", time.Since(start))
	// Read at once: `lancelot reload` returns once the reload is done.
	if n := len(s.servingPIDs()); n != 1 {
		t.Errorf("serving workers when lancelot reload returned = %d, want 1", n)
	}
	l.waitExchanges(1000)
	l.requireNoFailures()
	if n := len(s.servingPIDs()); n != 1 {
		t.Errorf("serving workers after reload to 1 = %d", n)
	}
	if n := listeningSockets(t, s.port); n != 3 {
		t.Errorf("listening sockets = %d, want 3 (a removed slot's socket stays open)", n)
	}
}

// reload runs `lancelot reload` and fails the test unless it succeeds.
func (s *server) reload() {
	s.t.Helper()
	if r := runCLI(s.t, 30*time.Second, "reload", "--pid-file", s.pidFile); r.code != 0 {
		s.t.Fatalf("lancelot reload: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestReloadWithBrokenConfigKeepsServing(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "lancelot.yaml")
	writeFile(t, cfg, "workers: 2\n")
	s := startServer(t, "--config", cfg)
	before := s.servingPIDs()
	writeFile(t, cfg, "workers: [\n")
	s.signal(syscall.SIGHUP)
	if st := s.waitHandled("HUP", 1); !sameSet(before, slotPIDs(st)) {
		t.Errorf("workers changed on a HUP with a broken config: %v -> %v", before, slotPIDs(st))
	}
	// `lancelot reload` hears why.
	r := runCLI(t, 30*time.Second, "reload", "--pid-file", s.pidFile)
	if r.code == 0 || !strings.Contains(r.stderr, "configuration rejected") {
		t.Errorf("lancelot reload of a broken config: exit %d, stderr %q; want non-zero, configuration rejected", r.code, r.stderr)
	}
	c := lancelottest.Dial(t, s.addr)
	c.Send(lancelottest.QName)
	c.Expect(lancelottest.AName)
	if after := s.servingPIDs(); !sameSet(before, after) {
		t.Errorf("workers changed on a rejected reload: %v -> %v", before, after)
	}
}

func TestScaleUpAndDownUnderLoad(t *testing.T) {
	s := startServer(t, "--workers", "2")
	l := startLoad(t, s.addr, 8, 8)
	l.waitExchanges(1000)
	start := time.Now()
	s.signal(syscall.SIGTTIN)
	s.waitHandled("TTIN", 1)
	t.Logf("TTIN took %v", time.Since(start))
	if n := len(s.servingPIDs()); n != 3 {
		t.Fatalf("workers after TTIN = %d, want 3", n)
	}
	l.waitExchanges(1000)
	start = time.Now()
	s.signal(syscall.SIGTTOU)
	s.waitHandled("TTOU", 1)
	t.Logf("TTOU took %v", time.Since(start))
	s.signal(syscall.SIGTTOU)
	s.waitHandled("TTOU", 2)
	s.signal(syscall.SIGTTOU) // refused: never fewer than one
	if st := s.waitHandled("TTOU", 3); st.Running != 1 {
		t.Errorf("running count after a third TTOU = %d, want it refused at 1", st.Running)
	}
	l.waitExchanges(1000)
	l.requireNoFailures()
	if n := len(s.servingPIDs()); n != 1 {
		t.Errorf("workers after 2 TTOU = %d, want 1", n)
	}
}

func TestKilledWorkerUnderLoad(t *testing.T) {
	s := startServer(t, "--workers", "2")
	l := startLoad(t, s.addr, 8, 8)
	l.waitExchanges(1000)
	victim := s.servingPIDs()[0]
	start := time.Now()
	syscall.Kill(victim, syscall.SIGKILL)
	s.waitStatus("the killed worker replaced and ready", func(st supervisor.Status) bool {
		return st.Restarts >= 1 && settled(st) && !slices.Contains(slotPIDs(st), victim)
	})
	t.Logf("SIGKILL to replacement ready: %v", time.Since(start))
	l.waitExchanges(1000)
	failures := l.failures()
	total := int64(0)
	for kind, n := range failures {
		// reset_queued here is a connection the worker had accepted but not
		// answered yet when it died: one of its open connections too.
		if kind != loadgen.EOF && kind != loadgen.Reset && kind != loadgen.ResetQueued {
			t.Errorf("%d failures of kind %q (examples %q): only the killed worker's open connections may fail", n, kind, l.examples())
		}
		total += n
	}
	if total > 16 {
		t.Errorf("%d failures, more than the 16 connections the killed worker could have had open", total)
	}
	t.Logf("failures after SIGKILL of a worker: %v", failures)
}

func TestBinaryUpgradeUnderLoad(t *testing.T) {
	bin := copyBinary(t)
	s := launchServerBinary(t, bin, "--workers", "2")
	l := startLoad(t, s.addr, 8, 8)
	l.waitExchanges(1000)
	start := time.Now()
	s.signal(syscall.SIGUSR2)
	newPID := s.waitNewSupervisor()
	t.Logf("USR2: new supervisor ready in %v", time.Since(start))
	l.waitExchanges(1000)
	l.requireNoFailures()
	if err := s.wait(10 * time.Second); err != nil {
		t.Errorf("old supervisor exit: %v, want 0", err)
	}
	c := lancelottest.Dial(t, s.addr)
	c.Send(lancelottest.QQuest)
	c.Expect(lancelottest.AQuest)
	if n := len(proc.Children(newPID)); n != 2 {
		t.Errorf("new supervisor has %d workers, want 2", n)
	}
}

func TestBinaryUpgradeToBrokenBinaryKeepsServing(t *testing.T) {
	bin := copyBinary(t)
	s := launchServerBinary(t, bin, "--workers", "2")
	l := startLoad(t, s.addr, 2, 2)
	l.waitExchanges(100)
	good := bin + ".good"
	if err := os.Rename(bin, good); err != nil {
		t.Fatal(err)
	}
	writeFile(t, bin, "#!/bin/sh\nexit 3\n")
	os.Chmod(bin, 0o755)
	s.signal(syscall.SIGUSR2)
	// Handled, and no upgrade in flight any more: it failed.
	s.waitHandled("USR2", 1)
	l.waitExchanges(100)
	l.requireNoFailures()
	if pid := s.pidFromFile(); pid != s.cmd.Process.Pid {
		t.Errorf("pid file names %d, want the old supervisor %d", pid, s.cmd.Process.Pid)
	}
}

func TestSecondUpgradeRefusedWhileInFlight(t *testing.T) {
	bin := copyBinary(t)
	s := launchServerBinary(t, bin, "--workers", "1")
	good := bin + ".good"
	os.Rename(bin, good)
	// A "binary" that never becomes ready keeps the first upgrade in flight.
	writeFile(t, bin, "#!/bin/sh\nexec sleep 30\n")
	os.Chmod(bin, 0o755)
	s.signal(syscall.SIGUSR2)
	s.waitStatus("a binary upgrade in flight", func(st supervisor.Status) bool { return st.Signals["USR2"] == 1 && st.Upgrade })
	s.signal(syscall.SIGUSR2)
	s.waitStatus("the second USR2 handled, the first upgrade still in flight", func(st supervisor.Status) bool {
		return st.Signals["USR2"] == 2 && st.Upgrade && st.PID == s.cmd.Process.Pid
	})
	s.signal(syscall.SIGTERM)
	if err := s.wait(10 * time.Second); err != nil {
		t.Errorf("exit after TERM: %v", err)
	}
}

// copyBinary puts a copy of the binary under test in a temp dir, so a test
// can replace it on disk for USR2.
func copyBinary(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "lancelot")
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// launchServerBinary is startServer for a binary at another path; it also
// kills, by pid, a supervisor that replaced it through USR2.
func launchServerBinary(t testing.TB, bin string, args ...string) *server {
	t.Helper()
	saved := binPath
	binPath = bin
	s := launchServer(t, append([]string{"serve", "--listen", "", "--pid-file", "", "--log-level", "debug"}, args...), nil)
	binPath = saved
	t.Cleanup(func() { killUpgraded(s) })
	s.waitReady()
	return s
}

// killUpgraded ends the supervisor an upgrade left in s's pid file.
func killUpgraded(s *server) {
	if pid := s.pidFromFile(); pid != s.cmd.Process.Pid {
		killSupervisor(pid)
	}
}

// waitNewSupervisor waits for the pid file to name a new supervisor and
// returns its pid.
func (s *server) waitNewSupervisor() int {
	s.t.Helper()
	var pid int
	s.waitFor(10*time.Second, "pid file naming the new supervisor", func() bool {
		pid = s.pidFromFile()
		return pid > 0 && pid != s.cmd.Process.Pid
	})
	return pid
}

func (s *server) pidFromFile() int {
	b, err := os.ReadFile(s.pidFile)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestStopUnderLoadResetsNobody: after TERM new clients are refused, but
// every client already connected, queued or accepted, is served.
func TestStopUnderLoadResetsNobody(t *testing.T) {
	s := startServer(t, "--workers", "2")
	l := startLoad(t, s.addr, 8, 8)
	l.waitExchanges(1000)
	s.signal(syscall.SIGTERM)
	lancelottest.WaitFor(t, 10*time.Second, "new connections refused", func() bool { return l.live(loadgen.Refused) > 0 })
	failures := l.failures()
	if err := s.wait(10 * time.Second); err != nil {
		t.Errorf("exit after TERM: %v", err)
	}
	t.Logf("TERM under load: %d exchanges, failures %v", l.stop().Exchanges, failures)
	for kind, n := range failures {
		// A client whose SYN lands between a worker's last accept and the
		// close of the socket's last copy is reset by the kernel: no
		// server can serve a socket it has closed (tcp_migrate_req could
		// move it, but there is no other socket left to move it to).
		if kind != loadgen.Refused && kind != loadgen.ResetQueued {
			t.Errorf("%d failures of kind %q (examples %q): only new connections may be refused after TERM", n, kind, l.examples())
		}
	}
	if failures[loadgen.ResetQueued] > 2 {
		t.Errorf("%d queued connections reset: more than the accept-then-close race explains", failures[loadgen.ResetQueued])
	}
}

// load keeps a continuous, checked load on a server while a test changes
// it (cmd/internal/loadgen): book-style clients (connect, ask the three
// questions, close) and long-lived ones (one connection, question after
// question). Each client holds one connection at a time, so a killed
// worker can cost at most one failure per client.
type load struct {
	t    testing.TB
	runs []*loadgen.Load
	once sync.Once
	res  loadgen.Result // the runs' results merged, once stopped
}

// startLoad starts the given numbers of book-style and long-lived clients
// on addr (either may be 0); the load stops when the test ends, if not
// before.
func startLoad(t testing.TB, addr string, book, long int) *load {
	t.Helper()
	l := &load{t: t}
	t.Cleanup(func() { l.stop() })
	for _, part := range []struct {
		mode loadgen.Mode
		n    int
	}{{loadgen.Book, book}, {loadgen.Persistent, long}} {
		if part.n == 0 {
			continue // loadgen would take the default
		}
		run, err := loadgen.Start(context.Background(), loadgen.Config{Server: addr, Mode: part.mode, Connections: part.n})
		if err != nil {
			t.Fatalf("start the %s load: %v", part.mode, err)
		}
		l.runs = append(l.runs, run)
	}
	return l
}

// progress sums the runs' live counts.
func (l *load) progress() loadgen.Progress {
	sum := loadgen.Progress{ByKind: map[loadgen.ErrorKind]int64{}}
	for _, run := range l.runs {
		p := run.Progress()
		sum.Exchanges += p.Exchanges
		sum.Connections += p.Connections
		for k, n := range p.ByKind {
			sum.ByKind[k] += n
		}
	}
	return sum
}

// live is the failures of kind so far, while the load runs.
func (l *load) live(kind loadgen.ErrorKind) int64 {
	return l.progress().ByKind[kind]
}

// waitExchanges waits until n more exchanges have succeeded.
func (l *load) waitExchanges(n int64) {
	l.t.Helper()
	target := l.progress().Exchanges + n
	lancelottest.WaitFor(l.t, 10*time.Second, fmt.Sprintf("%d more exchanges", n), func() bool {
		return l.progress().Exchanges >= target
	})
}

// stop ends the load, at once, and returns the merged result; later calls
// return the same.
func (l *load) stop() loadgen.Result {
	l.once.Do(func() {
		l.res.Errors = map[loadgen.ErrorKind]int64{}
		for _, run := range l.runs {
			r, err := run.Stop()
			if err != nil {
				l.t.Errorf("load: %v", err)
			}
			l.res.Exchanges += r.Exchanges
			for k, n := range r.Errors {
				l.res.Errors[k] += n
			}
			l.res.Examples = append(l.res.Examples, r.Examples...)
		}
	})
	return l.res
}

// failures stops the load and returns its failures by kind, the kinds
// that occurred only.
func (l *load) failures() map[loadgen.ErrorKind]int64 {
	out := map[loadgen.ErrorKind]int64{}
	for k, n := range l.stop().Errors {
		if n > 0 {
			out[k] = n
		}
	}
	return out
}

// examples are the first failures of each run, "kind: error".
func (l *load) examples() []string {
	return l.stop().Examples
}

// requireNoFailures stops the load and fails the test on any failure, or
// if not one exchange succeeded.
func (l *load) requireNoFailures() {
	l.t.Helper()
	failures := l.failures()
	res := l.stop()
	l.t.Logf("load: %d exchanges over %d connections, failures %v", res.Exchanges, l.progress().Connections, failures)
	if len(failures) > 0 {
		l.t.Errorf("failures by kind: %v; examples: %q", failures, res.Examples)
	}
	if res.Exchanges == 0 {
		l.t.Errorf("no exchange succeeded")
	}
}
