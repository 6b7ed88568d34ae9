package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/cmd/internal/proc"
	"github.com/camelot/lancelot/shared/lancelottest"
	"github.com/camelot/lancelot/shared/version"
)

// requireTool finds a tool or skips; with LANCELOT_REQUIRE_TOOLS=1 (set by
// .ci/run) a missing tool fails the test instead.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("LANCELOT_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s not found: %v", name, err)
		}
		t.Skipf("%s not found", name)
	}
	return path
}

// notification is one sd_notify datagram and the pid that sent it.
type notification struct {
	pid   int
	state string
}

// notifySocket stands in for systemd: a unixgram socket with SO_PASSCRED,
// so the test sees who sent each message.
type notifySocket struct {
	t    *testing.T
	conn *net.UnixConn
	path string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	raw, _ := conn.SyscallConn()
	raw.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) })
	return &notifySocket{t: t, conn: conn, path: path}
}

// next returns the next message, failing the test after 10 s.
func (n *notifySocket) next() notification {
	n.t.Helper()
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	n.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	nb, noob, _, _, err := n.conn.ReadMsgUnix(buf, oob)
	if err != nil {
		n.t.Fatalf("waiting for a notification: %v", err)
	}
	msg := notification{state: string(buf[:nb])}
	if cmsgs, err := unix.ParseSocketControlMessage(oob[:noob]); err == nil && len(cmsgs) > 0 {
		if cred, err := unix.ParseUnixCredentials(&cmsgs[0]); err == nil {
			msg.pid = int(cred.Pid)
		}
	}
	return msg
}

// expect reads messages until one contains every line in want, failing on
// a message that contains a line in never.
func (n *notifySocket) expect(want []string, never ...string) notification {
	n.t.Helper()
	for {
		m := n.next()
		for _, bad := range never {
			if hasLine(m.state, bad) {
				n.t.Fatalf("unexpected notification %q from pid %d", m.state, m.pid)
			}
		}
		ok := true
		for _, w := range want {
			ok = ok && hasLine(m.state, w)
		}
		if ok {
			return m
		}
	}
}

func hasLine(state, prefix string) bool {
	for _, line := range strings.Split(state, "\n") {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}

func TestNotifySequence(t *testing.T) {
	ns := newNotifySocket(t)
	bin := copyBinary(t)
	saved := binPath
	binPath = bin
	s := launchServer(t, []string{"serve", "--listen", "", "--pid-file", "", "--workers", "2"}, []string{"NOTIFY_SOCKET=" + ns.path})
	binPath = saved
	t.Cleanup(func() { killUpgraded(s) })
	oldPID := s.cmd.Process.Pid

	// Start.
	if m := ns.expect([]string{"READY=1", "STATUS="}, "STOPPING=1"); m.pid != oldPID || !regexp.MustCompile(`(?m)^STATUS=serving on .*, lancelot `+regexp.QuoteMeta(version.Version)+`$`).MatchString(m.state) {
		t.Errorf("READY=1 %q from pid %d, want the supervisor %d, with its version in STATUS=", m.state, m.pid, oldPID)
	}
	// HUP: RELOADING=1 with MONOTONIC_USEC, then READY=1.
	s.signal(syscall.SIGHUP)
	m := ns.expect([]string{"RELOADING=1"})
	if !regexp.MustCompile(`(?m)^MONOTONIC_USEC=\d+$`).MatchString(m.state) {
		t.Errorf("RELOADING=1 without MONOTONIC_USEC: %q", m.state)
	}
	ns.expect([]string{"READY=1"}, "STOPPING=1")
	// USR2: the new supervisor sends MAINPID=<its pid> and READY=1 itself,
	// once the old one accepted it (the unit has NotifyAccess=all); the
	// old one never names it to systemd before that, or systemd would
	// follow a process that may yet be refused. Nor does it ever say
	// STOPPING=1, or systemd would stop the service.
	s.signal(syscall.SIGUSR2)
	m = ns.expect([]string{"MAINPID="}, "STOPPING=1")
	newPID := s.waitNewSupervisor()
	if m.pid != newPID || !hasLine(m.state, "MAINPID="+strconv.Itoa(newPID)) || !hasLine(m.state, "READY=1") {
		t.Errorf("first upgrade notification %q from pid %d, want MAINPID=%d and READY=1 from the new supervisor itself", m.state, m.pid, newPID)
	}
	if err := s.wait(10 * time.Second); err != nil {
		t.Errorf("old supervisor: %v", err)
	}
	// TERM to the new supervisor: STOPPING=1 from it.
	syscall.Kill(newPID, syscall.SIGTERM)
	if m := ns.expect([]string{"STOPPING=1"}); m.pid != newPID {
		t.Errorf("STOPPING=1 from pid %d, want %d", m.pid, newPID)
	}
}

func TestSocketActivation(t *testing.T) {
	activate := requireTool(t, "systemd-socket-activate")
	port := lancelottest.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "lancelot.pid")
	a := startActivated(t, activate, addr, "serve", "--workers", "2", "--pid-file", pidFile)
	lancelottest.WaitFor(t, 5*time.Second, "systemd-socket-activate listening", func() bool { return listeningSockets(t, port) == 1 })
	// systemd-socket-activate starts the server on the first connection:
	// this client's question waits in the passed socket meanwhile.
	c := lancelottest.Dial(t, addr)
	c.Send(lancelottest.QName + lancelottest.QColor)
	c.Expect(lancelottest.AName)
	c.Expect(lancelottest.AColor)
	lancelottest.WaitFor(t, 5*time.Second, "pid file", func() bool { _, err := os.Stat(pidFile); return err == nil })
	if st := mustStatus(t, pidFile); len(st.Sockets) != 1 || st.Sockets[0].Addr != addr || len(st.Sockets[0].ServedBy) == 0 {
		t.Errorf("supervisor's sockets %+v; want it to serve the one passed socket, %s", st.Sockets, addr)
	}
	if n := len(proc.Children(a.cmd.Process.Pid)); n != 2 {
		t.Errorf("workers = %d, want 2", n)
	}
	c.Conn.Close() // or the graceful stop at the test's end waits for this client
}

// activated is lancelot under systemd-socket-activate, which listens on
// the address and execs lancelot (the same pid) on the first connection.
type activated struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed when it has exited
	waitErr error         // its exit error, once exited is closed
	logs    *logFile
}

// startActivated runs `ACTIVATE -l addr lancelot args...`, its output in a
// file; when the test ends it is stopped (TERM, then KILL after 10 s) with
// its workers, and its output is logged if the test failed.
func startActivated(t *testing.T, activate, addr string, args ...string) *activated {
	t.Helper()
	return startActivatedOn(t, activate, []string{addr}, args...)
}

// startActivatedOn is startActivated with a socket on each of addrs.
func startActivatedOn(t *testing.T, activate string, addrs []string, args ...string) *activated {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "activated.log"))
	if err != nil {
		t.Fatal(err)
	}
	var argv []string
	for _, addr := range addrs {
		argv = append(argv, "-l", addr)
	}
	a := &activated{cmd: exec.Command(activate, append(append(argv, binPath), args...)...),
		exited: make(chan struct{}), logs: &logFile{f: f}}
	a.cmd.Stdout, a.cmd.Stderr = f, f
	if err := a.cmd.Start(); err != nil {
		f.Close()
		t.Fatal(err)
	}
	go func() {
		a.waitErr = a.cmd.Wait()
		close(a.exited)
	}()
	t.Cleanup(func() {
		terminate(a.cmd.Process, a.exited)
		f.Close()
		if t.Failed() {
			t.Logf("socket-activated lancelot's output:\n%s", a.logs)
		}
	})
	return a
}

func TestSystemdUnitsVerify(t *testing.T) {
	analyze := requireTool(t, "systemd-analyze")
	units, _ := filepath.Glob("../../configs/lancelot.*")
	var args []string
	for _, u := range units {
		if strings.HasSuffix(u, ".service") || strings.HasSuffix(u, ".socket") {
			args = append(args, u)
		}
	}
	if len(args) != 2 {
		t.Fatalf("units found: %v, want lancelot.service and lancelot.socket", args)
	}
	out, _ := exec.Command(analyze, append([]string{"verify"}, args...)...).CombinedOutput()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" || strings.Contains(line, "/usr/local/bin/lancelot is not executable") {
			continue
		}
		t.Errorf("systemd-analyze verify: %s", line)
	}
}

func TestMetricsCountExactly(t *testing.T) {
	maddr := "127.0.0.1:" + strconv.Itoa(lancelottest.FreePort(t))
	s := startServer(t, "--workers", "2", "--metrics", maddr)
	for range 3 {
		c := lancelottest.Dial(t, s.addr)
		c.Send(lancelottest.QName + lancelottest.QQuest)
		c.Expect(lancelottest.AName)
		c.Expect(lancelottest.AQuest)
		c.Conn.Close()
	}
	c := lancelottest.Dial(t, s.addr)
	c.Send(lancelottest.QColor + "What is the airspeed velocity of an unladen swallow?")
	c.Expect(lancelottest.AColor)
	c.ExpectClosed(5 * time.Second)
	want := map[string]float64{
		"lancelot_questions_answered_total":   7,
		"lancelot_unknown_questions_total":    1,
		"lancelot_connections_accepted_total": 4,
		"lancelot_workers":                    2,
		"lancelot_worker_restarts_total":      0,
	}
	lancelottest.WaitFor(t, 5*time.Second, "connections_active back to 0", func() bool {
		return scrape(t, maddr)["lancelot_connections_active"] == 0
	})
	got := scrape(t, maddr)
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
	if _, ok := got["process_resident_memory_bytes"]; !ok {
		t.Errorf("no process metrics")
	}
	syscall.Kill(s.servingPIDs()[0], syscall.SIGKILL)
	lancelottest.WaitFor(t, 5*time.Second, "restart counted and worker back", func() bool {
		m := scrape(t, maddr)
		return m["lancelot_worker_restarts_total"] == 1 && m["lancelot_workers"] == 2
	})
}

// scrape fetches /metrics and returns the unlabelled samples.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %v", resp.StatusCode, errors.Join(err))
	}
	out := make(map[string]float64)
	for _, line := range strings.Split(string(body), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && !strings.HasPrefix(line, "#") {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				out[f[0]] = v
			}
		}
	}
	return out
}
