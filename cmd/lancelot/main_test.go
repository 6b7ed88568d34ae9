package main

// Integration tests drive the real binary, built once in TestMain, as a user
// would: real processes, real sockets on 127.0.0.1. Helpers here are shared
// by every *_test.go file of the package.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// binPath is the lancelot binary under test.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lancelot-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "lancelot")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build lancelot:", err)
		os.Exit(1)
	}
	if other := os.Getenv("LANCELOT_TEST_BIN"); other != "" {
		// Run the suite against another build, e.g. an older release, to
		// show which tests it fails.
		binPath = other
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// logFile collects a process tree's output in a file, so processes that
// outlive the one the test started (a binary upgrade's new supervisor) keep
// logging to the same place, and Wait does not wait for them.
type logFile struct {
	f *os.File
}

func (l *logFile) String() string {
	b, _ := os.ReadFile(l.f.Name())
	return string(b)
}

// server is a running `lancelot serve`.
type server struct {
	t       testing.TB
	cmd     *exec.Cmd
	addr    string // 127.0.0.1:port
	port    int
	dir     string // temp dir with the pid file
	pidFile string
	logs    *logFile
	exited  chan struct{}
	waitErr error
}

// startServer runs `lancelot serve --listen 127.0.0.1:PORT --pid-file F
// args...` on a free port and waits until it is ready (pid file written).
// The server is stopped (TERM, then KILL) when the test ends.
func startServer(t testing.TB, args ...string) *server {
	t.Helper()
	s := launchServer(t, append([]string{"serve", "--listen", "", "--pid-file", ""}, args...), nil)
	s.waitReady()
	return s
}

// launchServer starts the binary with args, replacing the empty values of
// --listen and --pid-file with a free port and a temp file; it does not
// wait for readiness. env is added to the environment.
func launchServer(t testing.TB, args []string, env []string) *server {
	t.Helper()
	return launchServerVia(t, nil, args, env)
}

// launchServerVia is launchServer through a wrapper command that execs the
// binary in its own process (prlimit --nofile=N:N), so the server keeps
// the wrapper's pid.
func launchServerVia(t testing.TB, wrapper []string, args []string, env []string) *server {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	s := &server{t: t, port: port, addr: fmt.Sprintf("127.0.0.1:%d", port), dir: dir,
		pidFile: filepath.Join(dir, "lancelot.pid"), exited: make(chan struct{})}
	f, err := os.Create(filepath.Join(dir, "lancelot.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	s.logs = &logFile{f: f}
	args = append([]string(nil), args...)
	for i := 0; i+1 < len(args); i++ {
		switch {
		case args[i] == "--listen" && args[i+1] == "":
			args[i+1] = s.addr
		case args[i] == "--pid-file" && args[i+1] == "":
			args[i+1] = s.pidFile
		}
	}
	argv := append(append(append([]string(nil), wrapper...), binPath), args...)
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = f, f
	s.cmd.Env = append(os.Environ(), env...)
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", args, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(s.cleanup)
	return s
}

// waitReady waits for the pid file naming the supervisor.
func (s *server) waitReady() {
	s.t.Helper()
	s.waitFor(10*time.Second, "pid file written", func() bool {
		b, err := os.ReadFile(s.pidFile)
		return err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(s.cmd.Process.Pid)
	})
}

// cleanup stops the server and every worker it left, by PID.
func (s *server) cleanup() {
	workers := s.workerPIDs()
	if !s.hasExited() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
	}
	for _, pid := range workers {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if s.t.Failed() {
		s.t.Logf("server logs:\n%s", s.logs.String())
	}
}

func (s *server) hasExited() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

// wait waits for the supervisor to exit and returns its exit error.
func (s *server) wait(timeout time.Duration) error {
	s.t.Helper()
	select {
	case <-s.exited:
		return s.waitErr
	case <-time.After(timeout):
		s.t.Fatalf("server still running after %v", timeout)
		return nil
	}
}

func (s *server) signal(sig syscall.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signal %v: %v", sig, err)
	}
}

// waitFor polls cond until it holds or the timeout passes.
func (s *server) waitFor(timeout time.Duration, what string, cond func() bool) {
	s.t.Helper()
	waitFor(s.t, timeout, what, cond)
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", timeout, what)
		}
		time.Sleep(delay)
	}
}

// workerPIDs returns the supervisor's child processes.
func (s *server) workerPIDs() []int {
	return childPIDs(s.cmd.Process.Pid)
}

// childPIDs lists the children of pid from /proc.
func childPIDs(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, field := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(field); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// listeningSockets counts the listening TCP sockets on port, from /proc.
func listeningSockets(t testing.TB, port int) int {
	t.Helper()
	n := 0
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 || fields[3] != "0A" {
				continue
			}
			if i := strings.LastIndexByte(fields[1], ':'); i >= 0 {
				if p, err := strconv.ParseInt(fields[1][i+1:], 16, 32); err == nil && int(p) == port {
					n++
				}
			}
		}
	}
	return n
}

// freePort returns a port nothing listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// client is one connection with a reader for answers.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

// answer reads one answer (up to '.') within 5 s.
func (c *client) answer() (string, error) {
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	return c.r.ReadString('.')
}

// expect reads one answer and checks it.
func (c *client) expect(want string) {
	c.t.Helper()
	got, err := c.answer()
	if err != nil || got != want {
		c.t.Fatalf("answer = %q, %v; want %q", got, err, want)
	}
}

// expectClosed checks the server closes the connection without sending
// anything more.
func (c *client) expectClosed(within time.Duration) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(within))
	b, err := io.ReadAll(c.r)
	if len(b) > 0 || (err != nil && !isReset(err)) {
		c.t.Fatalf("after close: read %q, %v; want EOF", b, err)
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

const (
	qName  = "What is your name?"
	qQuest = "What is your quest?"
	qColor = "What is your favorite color?"
	aName  = "My name is Sir Lancelot of Camelot."
	aQuest = "To seek the Holy Grail."
	aColor = "Blue."
)

// askOnce dials addr, sends q and reads one answer (up to '.'), all within
// timeout. Unlike client, it reports rather than fails, so any goroutine
// may call it.
func askOnce(addr, q string, timeout time.Duration) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte(q)); err != nil {
		return "", err
	}
	return bufio.NewReader(conn).ReadString('.')
}

// expectAll reads exactly len(want) bytes (several answers) and checks them.
func (c *client) expectAll(want string) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(want))
	n, err := io.ReadFull(c.r, got)
	if err != nil || string(got) != want {
		c.t.Fatalf("answers = %q, %v; want %q", got[:n], err, want)
	}
}

// expectOpen checks the server neither sends anything nor closes the
// connection for d.
func (c *client) expectOpen(d time.Duration) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(d))
	b, err := c.r.ReadByte()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		c.t.Fatalf("read %q, %v; want the connection open and silent for %v", b, err, d)
	}
}

// listeningInodes returns the inodes of the TCP sockets (IPv4 and IPv6)
// listening on port. It asks the kernel over netlink (sock_diag) for
// listening sockets only: /proc/net/tcp lists every connection, and takes
// seconds to read when a load test left many thousands in TIME_WAIT.
func listeningInodes(t testing.TB, port int) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if err := diagListening(family, port, out); err != nil {
			t.Fatalf("list listening sockets: %v", err)
		}
	}
	return out
}

// diagListening adds to out the inodes of family's TCP sockets listening
// on port.
func diagListening(family uint8, port int, out map[string]bool) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_INET_DIAG)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	const (
		sizeofReq  = 56 // struct inet_diag_req_v2
		tcpListen  = 10 // TCP_LISTEN
		offSport   = 4  // inet_diag_msg.id.idiag_sport, big endian
		offInode   = 68 // inet_diag_msg.idiag_inode
		sizeofDiag = 72 // struct inet_diag_msg
	)
	req := make([]byte, unix.NLMSG_HDRLEN+sizeofReq)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	body := req[unix.NLMSG_HDRLEN:]
	body[0], body[1] = family, unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(body[4:], 1<<tcpListen)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				return fmt.Errorf("sock_diag: netlink error")
			}
			if len(m.Data) < sizeofDiag {
				continue
			}
			if int(binary.BigEndian.Uint16(m.Data[offSport:])) == port {
				out[strconv.FormatUint(uint64(binary.NativeEndian.Uint32(m.Data[offInode:])), 10)] = true
			}
		}
	}
}

// socketInodes returns the inodes of the sockets pid has open.
func socketInodes(pid int) map[string]bool {
	out := map[string]bool{}
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	for _, fd := range fds {
		link, err := os.Readlink(fd)
		if err == nil && strings.HasPrefix(link, "socket:[") {
			out[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	return out
}

// countCommon counts the keys a and b share.
func countCommon(a, b map[string]bool) int {
	n := 0
	for k := range a {
		if b[k] {
			n++
		}
	}
	return n
}

// cliResult is how a finished lancelot command went.
type cliResult struct {
	stdout, stderr string
	code           int // exit code; -1 if killed by a signal
	elapsed        time.Duration
}

// runCLI runs the binary with args in a process group of its own, waits up
// to timeout for it to exit, then checks no process of its group (a worker
// it started) is left. It fails the test if the command does not exit.
func runCLI(t testing.TB, timeout time.Duration, args ...string) cliResult {
	t.Helper()
	var stdout, stderr strings.Builder
	cmd := exec.Command(binPath, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start lancelot %q: %v", args, err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(timeout):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
		t.Fatalf("lancelot %q still running after %v; stderr:\n%s", args, timeout, stderr.String())
	}
	r := cliResult{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode(), elapsed: time.Since(start)}
	waitFor(t, 2*time.Second, fmt.Sprintf("no process left in the group of lancelot %q", args), func() bool {
		return errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH)
	})
	return r
}

// dialRaw dials addr; the connection is closed when the test ends.
func dialRaw(t testing.TB, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// askOn sends q on conn and reads one answer (up to '.') within 5 s. It
// reads byte by byte, so nothing after the answer is consumed, and reports
// rather than fails, so any goroutine may call it.
func askOn(conn net.Conn, q string) (string, error) {
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	defer conn.SetDeadline(time.Time{})
	if _, err := conn.Write([]byte(q)); err != nil {
		return "", err
	}
	var answer []byte
	b := make([]byte, 1)
	for {
		if _, err := conn.Read(b); err != nil {
			return string(answer), err
		}
		answer = append(answer, b[0])
		if b[0] == '.' {
			return string(answer), nil
		}
	}
}

// readUntilClosed waits up to timeout for the server to close conn (EOF or
// reset) without sending anything; any goroutine may call it.
func readUntilClosed(conn net.Conn, timeout time.Duration) error {
	conn.SetReadDeadline(time.Now().Add(timeout))
	b, err := io.ReadAll(conn)
	if len(b) > 0 {
		return fmt.Errorf("read %q before the close", b)
	}
	if err != nil && !isReset(err) {
		return err
	}
	return nil
}
