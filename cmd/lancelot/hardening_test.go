package main

// Hostile and broken clients must not take lancelot down. Each test is a
// cheap version of an attack that took the landed version down: a low
// descriptor limit (prlimit) makes the limits near.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/camelot/lancelot/cmd/internal/proc"
	"github.com/camelot/lancelot/shared/lancelottest"
)

// TestStalledLogReader: with its log going to a pipe nobody reads, a
// server logging every connection (debug) keeps serving through a flood of
// bad questions: an established client and a new one are answered at once.
func TestStalledLogReader(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close() // never read: a stalled journald, a blocked log shipper
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	addr := fmt.Sprintf("127.0.0.1:%d", lancelottest.FreePort(t))
	cmd := exec.Command(binPath, "serve", "--listen", addr, "--workers", "2", "--pid-file", pidFile, "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() { killTree(cmd) })
	lancelottest.WaitFor(t, 10*time.Second, "pid file", func() bool { _, err := os.Stat(pidFile); return err == nil })

	established := lancelottest.DialConn(t, addr)
	if a, err := lancelottest.AskOn(established, lancelottest.QName); err != nil || a != lancelottest.AName {
		t.Fatalf("before the flood: %q, %v", a, err)
	}
	floodUnknown(t, addr, 1500)
	for _, c := range []struct {
		name string
		ask  func() (string, error)
	}{
		{"established client", func() (string, error) { return lancelottest.AskOn(established, lancelottest.QQuest) }},
		{"new client", func() (string, error) { return lancelottest.AskOnce(addr, lancelottest.QColor, time.Second) }},
	} {
		start := time.Now()
		a, err := c.ask()
		if err != nil || time.Since(start) > time.Second {
			t.Errorf("%s after 1500 bad questions into a stalled log: %q, %v after %v; want an answer within 1s", c.name, a, err, time.Since(start))
		}
	}
}

// floodUnknown sends n unknown questions, each on its own connection, from
// a few goroutines, and checks every one is closed promptly; it gives up
// after 20 s (a frozen server never closes them).
func floodUnknown(t *testing.T, addr string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed, sent := 0, 0
	for range 10 {
		wg.Go(func() {
			for range n / 10 {
				if time.Now().After(deadline) {
					return
				}
				conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
				if err == nil {
					conn.Write([]byte("What is the air-speed velocity of an unladen swallow?"))
					err = lancelottest.ReadUntilClosed(conn, 2*time.Second)
					conn.Close()
				}
				mu.Lock()
				sent++
				if err != nil {
					failed++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failed > 0 || sent < n {
		t.Errorf("%d of %d bad questions sent within 20 s, %d of them not closed within 2 s", sent, n, failed)
	}
}

// killTree ends a server started by hand and its workers, by pid.
func killTree(cmd *exec.Cmd) {
	workers := proc.Children(cmd.Process.Pid)
	cmd.Process.Kill()
	cmd.Wait()
	for _, pid := range workers {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// TestClientErrorsSummarized: at the default level, a flood of bad
// questions costs the log one summary line per worker, not a line each,
// and the metrics count every one by reason.
func TestClientErrorsSummarized(t *testing.T) {
	t.Parallel()
	metrics := fmt.Sprintf("127.0.0.1:%d", lancelottest.FreePort(t))
	s := startServer(t, "--workers", "2", "--metrics", metrics)
	floodUnknown(t, s.addr, 500)
	lancelottest.WaitFor(t, 5*time.Second, "every close counted", func() bool {
		return metricValue(t, metrics, `lancelot_connections_closed_total{reason="unknown"}`) == 500
	})
	s.signal(syscall.SIGTERM)
	if err := s.wait(10 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	logs := s.logs.String()
	if n := strings.Count(logs, "unknown question") + strings.Count(logs, "closing connection"); n > 0 {
		t.Errorf("%d per-connection lines at the default level; want only summaries", n)
	}
	total := 0
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, `msg="connections closed by the server"`) {
			continue
		}
		i := strings.Index(line, " unknown=")
		if i < 0 {
			t.Errorf("summary without an unknown count: %s", line)
			continue
		}
		n, _ := strconv.Atoi(strings.Fields(line[i+len(" unknown="):])[0])
		total += n
		if !strings.Contains(line, "example.input=") {
			t.Errorf("summary without an example: %s", line)
		}
	}
	if total != 500 {
		t.Errorf("summaries count %d unknown questions, want 500; log:\n%s", total, logs)
	}
}

// metricValue reads one sample of the metrics endpoint; -1 if absent.
func metricValue(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// TestSilentConnectionsShed: 3000 connections that never send a byte,
// from one host, against workers limited to 1024 descriptors, do not keep
// a client from another host from being answered within 2 s.
func TestSilentConnectionsShed(t *testing.T) {
	t.Parallel()
	prlimit := requireTool(t, "prlimit")
	s := launchServerVia(t, []string{prlimit, "--nofile=1024:1024"},
		[]string{"serve", "--listen", "", "--pid-file", "", "--workers", "2"}, nil)
	s.waitReady()
	var silent []net.Conn
	defer func() {
		for _, c := range silent {
			c.Close()
		}
	}()
	for i := range 3000 {
		c, err := lancelottest.DialSource(s.addr, "127.0.0.2", 5*time.Second)
		if err != nil {
			t.Fatalf("silent connection %d: %v", i, err)
		}
		silent = append(silent, c)
	}
	for i := range 5 {
		a, took, err := lancelottest.AskFrom(s.addr, "127.0.0.3", lancelottest.QName, 2*time.Second)
		if err != nil || a != lancelottest.AName || took > 2*time.Second {
			t.Errorf("good client %d with 3000 silent connections open: %q, %v after %v; want an answer within 2s", i, a, err, took)
		}
	}
}

// TestMetricsFloodCannotStopRestarts: 1100 idle connections on the
// metrics port of a supervisor limited to 1024 descriptors do not keep it
// from replacing a killed worker within 3 s.
func TestMetricsFloodCannotStopRestarts(t *testing.T) {
	t.Parallel()
	prlimit := requireTool(t, "prlimit")
	metrics := fmt.Sprintf("127.0.0.1:%d", lancelottest.FreePort(t))
	s := launchServerVia(t, []string{prlimit, "--nofile=1024:1024"},
		[]string{"serve", "--listen", "", "--pid-file", "", "--workers", "2", "--metrics", metrics}, nil)
	s.waitReady()
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for i := range 1100 {
		c, err := net.DialTimeout("tcp", metrics, 5*time.Second)
		if err != nil {
			t.Fatalf("metrics connection %d: %v", i, err)
		}
		if i%2 == 0 { // half of them keep-alive after a request, half silent
			fmt.Fprintf(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
		}
		idle = append(idle, c)
	}
	before := s.workerPIDs()
	victim := before[0]
	syscall.Kill(victim, syscall.SIGKILL)
	start := time.Now()
	lancelottest.WaitFor(t, 3*time.Second, "the killed worker replaced and answering", func() bool {
		pids := s.workerPIDs()
		if len(pids) != 2 || slices.Contains(pids, victim) {
			return false
		}
		for range 4 {
			if a, err := lancelottest.AskOnce(s.addr, lancelottest.QName, time.Second); err != nil || a != lancelottest.AName {
				return false
			}
		}
		return true
	})
	t.Logf("worker replaced in %v with 1100 metrics connections open", time.Since(start))
}

// TestMetricsHugeHeaderRefused: a 64 KiB request header gets 431, not a
// megabyte of the supervisor's memory.
func TestMetricsHugeHeaderRefused(t *testing.T) {
	t.Parallel()
	metrics := fmt.Sprintf("127.0.0.1:%d", lancelottest.FreePort(t))
	startServer(t, "--workers", "1", "--metrics", metrics)
	conn, err := net.DialTimeout("tcp", metrics, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	go fmt.Fprintf(conn, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 64<<10))
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil && err != io.EOF {
		t.Fatalf("read: %v", err)
	}
	if status != "" && !strings.Contains(status, "431") {
		t.Errorf("a 64 KiB header got %q, want 431 or a close", status)
	}
}

// TestMetricsExactOverTime: every scrape counts exactly the questions
// answered before it, however long after the supervisor last wrote to the
// workers (a write deadline left behind on the control channel once made
// scrapes between heartbeats return stale counters).
func TestMetricsExactOverTime(t *testing.T) {
	t.Parallel()
	metrics := fmt.Sprintf("127.0.0.1:%d", lancelottest.FreePort(t))
	s := startServer(t, "--workers", "2", "--metrics", metrics)
	c := lancelottest.Dial(t, s.addr)
	deadline := time.Now().Add(2500 * time.Millisecond) // spans several heartbeats
	for n := 1; time.Now().Before(deadline); n++ {
		c.Send(lancelottest.QName)
		c.Expect(lancelottest.AName)
		if got := metricValue(t, metrics, "lancelot_questions_answered_total"); got != float64(n) {
			t.Fatalf("scrape after %d answers says %v", n, got)
		}
		time.Sleep(50 * time.Millisecond) // the scrapes must land between heartbeats too
	}
}
