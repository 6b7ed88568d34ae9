package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Each transition of the signal table (docs/reference.md) runs under a continuous
// load of book-style and long-lived clients and must not cost a single
// connection or question.

func TestReloadUnderLoad(t *testing.T) {
	s := startServer(t, "--workers", "2")
	tr := startTraffic(t, s.addr, 8, 8)
	tr.waitExchanges(t, 1000)
	before := s.workerPIDs()
	start := time.Now()
	s.signal(syscall.SIGHUP)
	s.waitLog("rollout complete", 1)
	t.Logf("HUP: every worker replaced in %v", time.Since(start))
	tr.waitExchanges(t, 1000)
	tr.requireNoFailures(t)
	after := s.workerPIDs()
	if len(after) < 2 || overlaps(s.servingPIDs(), before) {
		t.Errorf("workers before HUP %v, serving after %v: want every worker replaced", before, s.servingPIDs())
	}
}

func TestReloadChangesWorkerCount(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "lancelot.yaml")
	writeFile(t, cfg, "workers: 2\n")
	s := startServer(t, "--config", cfg)
	tr := startTraffic(t, s.addr, 8, 8)
	tr.waitExchanges(t, 1000)
	writeFile(t, cfg, "workers: 3\n")
	start := time.Now()
	s.signal(syscall.SIGHUP)
	s.waitLog("rollout complete", 1)
	t.Logf("HUP 2->3 workers took %v", time.Since(start))
	s.waitFor(5*time.Second, "3 serving workers", func() bool { return len(s.servingPIDs()) == 3 })
	writeFile(t, cfg, "workers: 1\n")
	start = time.Now()
	s.signal(syscall.SIGHUP)
	s.waitLog("rollout complete", 2)
	t.Logf("HUP 3->1 workers took %v", time.Since(start))
	tr.waitExchanges(t, 1000)
	tr.requireNoFailures(t)
	if n := len(s.servingPIDs()); n != 1 {
		t.Errorf("serving workers after reload to 1 = %d", n)
	}
	if n := listeningSockets(t, s.port); n != 3 {
		t.Errorf("listening sockets = %d, want 3 (a removed slot's socket stays open)", n)
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
	s.waitLog("configuration rejected", 1)
	c := dial(t, s.addr)
	c.send(qName)
	c.expect(aName)
	if after := s.servingPIDs(); !sameSet(before, after) {
		t.Errorf("workers changed on a rejected reload: %v -> %v", before, after)
	}
}

func TestScaleUpAndDownUnderLoad(t *testing.T) {
	s := startServer(t, "--workers", "2")
	tr := startTraffic(t, s.addr, 8, 8)
	tr.waitExchanges(t, 1000)
	start := time.Now()
	s.signal(syscall.SIGTTIN)
	s.waitLog("rollout complete", 1)
	t.Logf("TTIN took %v", time.Since(start))
	if n := len(s.servingPIDs()); n != 3 {
		t.Fatalf("workers after TTIN = %d, want 3", n)
	}
	tr.waitExchanges(t, 1000)
	start = time.Now()
	s.signal(syscall.SIGTTOU)
	s.waitLog("rollout complete", 2)
	t.Logf("TTOU took %v", time.Since(start))
	s.signal(syscall.SIGTTOU)
	s.waitLog("rollout complete", 3)
	s.signal(syscall.SIGTTOU) // refused: never fewer than one
	s.waitLog("TTOU refused", 1)
	tr.waitExchanges(t, 1000)
	tr.requireNoFailures(t)
	if n := len(s.servingPIDs()); n != 1 {
		t.Errorf("workers after 2 TTOU = %d, want 1", n)
	}
}

func TestKilledWorkerUnderLoad(t *testing.T) {
	s := startServer(t, "--workers", "2")
	tr := startTraffic(t, s.addr, 8, 8)
	tr.waitExchanges(t, 1000)
	victim := s.servingPIDs()[0]
	start := time.Now()
	syscall.Kill(victim, syscall.SIGKILL)
	s.waitLog("worker ready", 3)
	t.Logf("SIGKILL to replacement ready: %v", time.Since(start))
	tr.waitExchanges(t, 1000)
	failures := tr.finish()
	total := 0
	for kind, n := range failures {
		// reset_queued here is a connection the worker had accepted but not
		// answered yet when it died: one of its open connections too.
		if kind != "eof" && kind != "reset" && kind != "reset_queued" {
			t.Errorf("%d failures of kind %q: only the killed worker's open connections may fail", n, kind)
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
	tr := startTraffic(t, s.addr, 8, 8)
	tr.waitExchanges(t, 1000)
	start := time.Now()
	s.signal(syscall.SIGUSR2)
	newPID := s.waitNewSupervisor()
	t.Logf("USR2: new supervisor ready in %v", time.Since(start))
	tr.waitExchanges(t, 1000)
	tr.requireNoFailures(t)
	if err := s.wait(10 * time.Second); err != nil {
		t.Errorf("old supervisor exit: %v, want 0", err)
	}
	c := dial(t, s.addr)
	c.send(qQuest)
	c.expect(aQuest)
	if n := len(childPIDs(newPID)); n != 2 {
		t.Errorf("new supervisor has %d workers, want 2", n)
	}
}

func TestBinaryUpgradeToBrokenBinaryKeepsServing(t *testing.T) {
	bin := copyBinary(t)
	s := launchServerBinary(t, bin, "--workers", "2")
	tr := startTraffic(t, s.addr, 2, 2)
	tr.waitExchanges(t, 100)
	good := bin + ".good"
	if err := os.Rename(bin, good); err != nil {
		t.Fatal(err)
	}
	writeFile(t, bin, "#!/bin/sh\nexit 3\n")
	os.Chmod(bin, 0o755)
	s.signal(syscall.SIGUSR2)
	s.waitLog("binary upgrade failed", 1)
	tr.waitExchanges(t, 100)
	tr.requireNoFailures(t)
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
	s.waitLog("binary upgrade started", 1)
	s.signal(syscall.SIGUSR2)
	s.waitLog("a binary upgrade is already in flight", 1)
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

func killUpgraded(s *server) {
	pid := s.pidFromFile()
	if pid <= 0 || pid == s.cmd.Process.Pid {
		return
	}
	workers := childPIDs(pid)
	syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	for _, w := range workers {
		syscall.Kill(w, syscall.SIGKILL)
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

// waitLog waits until the server's log holds substr at least n times.
func (s *server) waitLog(substr string, n int) {
	s.t.Helper()
	s.waitFor(10*time.Second, fmt.Sprintf("%d log lines with %q", n, substr), func() bool {
		return strings.Count(s.logs.String(), substr) >= n
	})
}

// servingPIDs are the supervisor's children that are not draining: the
// pids of the last "rollout complete" or "supervisor ready" line's pids=,
// cross-checked against the live children.
func (s *server) servingPIDs() []int {
	logs := s.logs.String()
	i := max(strings.LastIndex(logs, "rollout complete"), strings.LastIndex(logs, "supervisor ready"))
	if i < 0 {
		return nil
	}
	line := logs[i:]
	line = line[:strings.IndexByte(line+"\n", '\n')]
	j := strings.Index(line, "pids=")
	if j < 0 {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(strings.Trim(line[j+5:], `"`)) {
		if n, err := strconv.Atoi(strings.Trim(f, `"`)); err == nil && alive(n) {
			out = append(out, n)
		}
	}
	return out
}

func overlaps(a, b []int) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

func sameSet(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !overlaps([]int{x}, b) {
			return false
		}
	}
	return true
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
	tr := startTraffic(t, s.addr, 8, 8)
	tr.waitExchanges(t, 1000)
	s.signal(syscall.SIGTERM)
	waitFor(t, 10*time.Second, "new connections refused", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return tr.failures["refused"] > 0
	})
	failures := tr.finish()
	if err := s.wait(10 * time.Second); err != nil {
		t.Errorf("exit after TERM: %v", err)
	}
	t.Logf("TERM under load: %d exchanges, failures %v", tr.exchanges.Load(), failures)
	for kind, n := range failures {
		// A client whose SYN lands between a worker's last accept and the
		// close of the socket's last copy is reset by the kernel: no
		// server can serve a socket it has closed (tcp_migrate_req could
		// move it, but there is no other socket left to move it to).
		if kind != "refused" && kind != "reset_queued" {
			t.Errorf("%d failures of kind %q (examples %q): only new connections may be refused after TERM", n, kind, tr.examples)
		}
	}
	if failures["reset_queued"] > 2 {
		t.Errorf("%d queued connections reset: more than the accept-then-close race explains", failures["reset_queued"])
	}
}
