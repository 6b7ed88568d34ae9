package main

import (
	"bufio"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camelot/lancelot/cmd/internal/proc"
	"github.com/camelot/lancelot/shared/lancelottest"
)

// Connections outlive a binary upgrade: the old supervisor's workers hand
// every open connection to the new supervisor's workers at a question
// boundary, and the old generation exits as soon as it is empty, instead
// of draining for --shutdown-timeout (30 s by default, which the handover
// tests keep).

// upgradeOld runs `lancelot upgrade` on s and returns the pids of the old
// generation (supervisor and workers) and the new supervisor's.
func upgradeOld(t *testing.T, s *server) (old []int, newPID int) {
	t.Helper()
	old = append([]int{s.cmd.Process.Pid}, proc.Children(s.cmd.Process.Pid)...)
	if r := runCLI(t, time.Minute, "upgrade", "--pid-file", s.pidFile); r.code != 0 {
		t.Fatalf("lancelot upgrade exited %d: %s", r.code, r.stderr)
	}
	return old, s.pidFromFile()
}

// heldBy counts the established connections to port held by each of pids.
func heldBy(t *testing.T, port int, pids []int) int {
	t.Helper()
	n := 0
	for _, pid := range holders(t, port) {
		for _, p := range pids {
			if p == pid {
				n++
			}
		}
	}
	return n
}

// TestUpgradeHandsOverPersistentClients: 50 clients that keep their
// connection through `lancelot upgrade` of the same build see no close and
// no answer lost or out of place, every connection ends up with the new
// supervisor's workers, and the old generation is gone within 3 s.
func TestUpgradeHandsOverPersistentClients(t *testing.T) {
	skipIfShort(t)
	s := launchServerBinary(t, copyBinary(t), "--workers", "2")
	cy := startCycler(t, s.addr, 50, 100*time.Millisecond)
	cy.waitAsked(t, 200)
	old, newPID := upgradeOld(t, s)
	requireGone(t, "upgrade", old)
	cy.waitAsked(t, 200)
	cy.halt()
	cy.requireNoErrors(t)
	if n := heldBy(t, s.port, proc.Children(newPID)); n != 50 {
		t.Errorf("the new supervisor's workers hold %d of 50 connections", n)
	}
	if logs := s.logs.String(); !strings.Contains(logs, "reason=upgrade handed_over=") {
		t.Errorf("no handover logged by the old workers:\n%s", grepLines(logs, "upgrade", "handover", "handed"))
	}
}

// TestUpgradeSplitQuestion: a question begun before an upgrade ends after
// it, on the new supervisor's worker, once the old generation is gone.
func TestUpgradeSplitQuestion(t *testing.T) {
	s := launchServerBinary(t, copyBinary(t), "--workers", "1")
	c := lancelottest.Dial(t, s.addr)
	c.Ask(lancelottest.QName, lancelottest.AName)
	c.Send("What is your")
	old, _ := upgradeOld(t, s)
	requireGone(t, "upgrade", old)
	c.Send(" quest?")
	c.Expect(lancelottest.AQuest)
	c.Ask(lancelottest.QColor, lancelottest.AColor)
}

// TestUpgradeHandoverOff: with --handover=off on either side, the old
// workers keep their connections and drain them as before: every
// connection stays with them after the upgrade, each is closed only at a
// question boundary (no answer lost or cut), the log says so, and the old
// generation exits after its drain.
func TestUpgradeHandoverOff(t *testing.T) {
	skipIfShort(t)
	for _, side := range []string{"predecessor", "successor"} {
		t.Run(side, func(t *testing.T) {
			// The successor reads the file again: each side gets its own.
			before, after := "off", "on"
			if side == "successor" {
				before, after = after, before
			}
			cfg := filepath.Join(t.TempDir(), "lancelot.yaml")
			writeFile(t, cfg, "shutdown-timeout: 3s\nhandover: \""+before+"\"\n")
			s := launchServerBinary(t, copyBinary(t), "--workers", "2", "--config", cfg)
			cy := startCycler(t, s.addr, 10, 100*time.Millisecond)
			cy.waitAsked(t, 50)
			writeFile(t, cfg, "shutdown-timeout: 3s\nhandover: \""+after+"\"\n")
			old, _ := upgradeOld(t, s)
			if n := heldBy(t, s.port, old); n != 10 {
				t.Errorf("right after the upgrade the old workers hold %d of 10 connections, want all (draining)", n)
			}
			lancelottest.WaitFor(t, 20*time.Second, "the old generation drained and gone", func() bool { return !anyAlive(old) })
			lancelottest.WaitFor(t, 10*time.Second, "every drained client closed", func() bool {
				_, closed := cy.counts()
				return closed == 10
			})
			cy.halt()
			cy.requireAnswered(t)
			logs := s.logs.String()
			if !strings.Contains(logs, "--handover=off") {
				t.Errorf("no log line says --handover=off drains:\n%s", grepLines(logs, "upgrade", "handover", "drain"))
			}
			if strings.Contains(logs, "reason=upgrade handed_over=") {
				t.Errorf("connections handed over with --handover=off on the %s", side)
			}
		})
	}
}

// pipelineAcrossUpgrade pipelines n questions on one connection, reads a
// quarter of the answers, runs `lancelot upgrade` while the rest wait
// unread, and reads them slowly: every answer must come, in order, and the
// connection must have been handed over. It returns the connection, the
// old generation's pids and the new supervisor's.
func pipelineAcrossUpgrade(t *testing.T, n int) (net.Conn, []int, int) {
	s := launchServerBinary(t, copyBinary(t), "--workers", "1")
	conn := lancelottest.DialConn(t, s.addr)
	ex := lancelottest.Exchanges()
	go func() {
		var b strings.Builder
		for i := range n {
			b.WriteString(ex[i%3][0])
		}
		conn.Write([]byte(b.String()))
	}()
	r := bufio.NewReaderSize(conn, 512)
	conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	var old []int
	newPID := 0
	for i := range n {
		if i == n/4 {
			old, newPID = upgradeOld(t, s)
		}
		a, err := r.ReadString('.')
		if err != nil {
			t.Fatalf("answer %d: %v (read %q)", i, err, a)
		}
		if a != ex[i%3][1] {
			t.Fatalf("answer %d = %q, want %q", i, a, ex[i%3][1])
		}
		if i%200 == 0 {
			time.Sleep(5 * time.Millisecond) // a slow reader
		}
	}
	if logs := s.logs.String(); !strings.Contains(logs, "reason=upgrade handed_over=1 ") {
		t.Errorf("the connection was not handed over:\n%s", grepLines(logs, "upgrade", "handover", "handed"))
	}
	return conn, old, newPID
}

// TestUpgradePipelinedSlowReader: 20,000 pipelined questions, read slowly
// across an upgrade, are all answered, in order; the old generation is
// then gone, and the connection, now held by the new supervisor's worker,
// answers on.
func TestUpgradePipelinedSlowReader(t *testing.T) {
	skipIfShort(t)
	conn, old, newPID := pipelineAcrossUpgrade(t, 20000)
	requireGone(t, "upgrade", old)
	if a, err := lancelottest.AskOn(conn, lancelottest.QColor); err != nil || a != lancelottest.AColor {
		t.Fatalf("after the upgrade: %q, %v", a, err)
	}
	port := conn.RemoteAddr().(*net.TCPAddr).Port
	if n := heldBy(t, port, proc.Children(newPID)); n != 1 {
		t.Errorf("the new supervisor's worker holds %d connections, want the pipelining one", n)
	}
}

// TestUpgradeRightBehindReload: an upgrade right behind a reload retires
// the reload's new worker while the worker it replaced still hands it
// connections: here one whose answers wait unread, so it can go only
// once the client reads, after the upgrade began. The retired receiver
// takes it and passes it on to the new supervisor's worker, so every
// answer comes, in order, and the old supervisor, which exits only once
// all its workers have, is gone within 3 s. (It used to refuse it as
// stopping: the reload's old worker kept it and closed it at
// --shutdown-timeout.) 40 persistent clients see no close meanwhile.
func TestUpgradeRightBehindReload(t *testing.T) {
	skipIfShort(t)
	s := launchServerBinary(t, copyBinary(t), "--workers", "1")
	cy := startCycler(t, s.addr, 40, 100*time.Millisecond)
	const n = 200000
	conn, r := pipelineUnread(t, s.addr, n)
	cy.waitAsked(t, 80)
	s.signal(syscall.SIGHUP)
	s.waitHandled("HUP", 1)
	cy.waitAsked(t, 80)
	old, newPID := upgradeOld(t, s)
	ex := lancelottest.Exchanges()
	conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	for i := range n {
		if a, err := r.ReadString('.'); err != nil || a != ex[i%3][1] {
			t.Fatalf("answer %d = %q, %v; want %q", i, a, err, ex[i%3][1])
		}
	}
	requireGone(t, "upgrade behind a reload", old)
	if a, err := lancelottest.AskOn(conn, lancelottest.QColor); err != nil || a != lancelottest.AColor {
		t.Fatalf("after the upgrade: %q, %v", a, err)
	}
	port := conn.LocalAddr().(*net.TCPAddr).Port
	if pids := holders(t, s.port); !slices.Contains(proc.Children(newPID), pids[port]) {
		t.Errorf("the pipelining connection is held by pid %d, not by a worker of the new supervisor %d", pids[port], newPID)
	}
	cy.waitAsked(t, 80)
	cy.halt()
	cy.requireNoErrors(t)
}

// pipelineUnread sends n questions on a connection with a small receive
// buffer and reads nothing, until the worker's answers wait unwritten.
func pipelineUnread(t *testing.T, addr string, n int) (net.Conn, *bufio.Reader) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ex := lancelottest.Exchanges()
	var b strings.Builder
	for i := range n {
		b.WriteString(ex[i%3][0])
	}
	go conn.Write([]byte(b.String()))
	return conn, bufio.NewReaderSize(conn, 512)
}
