package main

// Integration tests drive the real binary, built once in TestMain, as a user
// would: real processes, real sockets on 127.0.0.1. Helpers here are shared
// by every *_test.go file of the package.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/cmd/internal/proc"
	"github.com/camelot/lancelot/shared/lancelottest"
	"github.com/camelot/lancelot/supervisor"
)

// binPath is the lancelot binary under test: the one TestMain built, or
// LANCELOT_TEST_BIN.
var binPath string

// TestMain builds the binary, or takes LANCELOT_TEST_BIN=path instead: the
// suite then runs against another build, e.g. an older release, to show
// which tests it fails (a build without `lancelot status` falls back to
// /proc where a test can). It fails the package if a goroutine leaks.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lancelot-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if binPath, err = binaryUnderTest(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
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

// skipIfShort skips a soak or a slow end-to-end run under -short, so that
// `go test -short ./...` stays quick; CI runs the whole suite.
func skipIfShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("slow: runs without -short")
	}
}

// binaryUnderTest returns LANCELOT_TEST_BIN as an absolute path (tests
// compare it with workers' command lines), or builds the package into dir.
func binaryUnderTest(dir string) (string, error) {
	if other := os.Getenv("LANCELOT_TEST_BIN"); other != "" {
		return filepath.Abs(other)
	}
	bin := filepath.Join(dir, "lancelot")
	build := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build lancelot: %w", err)
	}
	return bin, nil
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
	port := lancelottest.FreePort(t)
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
	terminate(s.cmd.Process, s.exited)
	if s.t.Failed() {
		s.t.Logf("server logs:\n%s", s.logs.String())
	}
}

// terminate stops a supervisor that is not waited for otherwise: TERM, and
// KILL if exited is not closed within 10 s; then it KILLs, by pid, the
// workers it had.
func terminate(p *os.Process, exited <-chan struct{}) {
	workers := proc.Children(p.Pid)
	select {
	case <-exited:
	default:
		p.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			p.Kill()
			<-exited
		}
	}
	for _, pid := range workers {
		syscall.Kill(pid, syscall.SIGKILL)
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
	lancelottest.WaitFor(s.t, timeout, what, cond)
}

// status is the supervisor's `lancelot status --json`; it fails the test
// if there is none.
func (s *server) status() supervisor.Status {
	s.t.Helper()
	return mustStatus(s.t, s.pidFile)
}

// waitStatus polls the supervisor's status until cond holds, for at most
// 10 s, and returns that status.
func (s *server) waitStatus(what string, cond func(supervisor.Status) bool) supervisor.Status {
	s.t.Helper()
	return waitStatus(s.t, s.pidFile, 10*time.Second, what, cond)
}

// waitQuiet waits until nothing changes in the supervisor (Status.Quiet):
// no rollout, upgrade or drain in flight, every slot's worker ready.
func (s *server) waitQuiet() supervisor.Status {
	s.t.Helper()
	return waitQuiet(s.t, s.pidFile, 10*time.Second)
}

// waitHandled waits until the supervisor has handled n signals named name
// (HUP, TTIN, USR2, ...) in all and is settled (see settled), and returns
// that status. A signal is counted in the event that acts on it, so a
// settled status that counts it shows what it did.
func (s *server) waitHandled(name string, n uint64) supervisor.Status {
	s.t.Helper()
	return s.waitStatus(fmt.Sprintf("%d %s handled, then settled", n, name), func(st supervisor.Status) bool {
		return st.Signals[name] >= n && settled(st)
	})
}

// settled is Status.Quiet but for retired workers: under load a long-lived
// client keeps the worker it is on draining until it leaves.
func settled(st supervisor.Status) bool {
	st.Retiring = nil
	return st.Quiet()
}

// servingPIDs are the pids of the slots' workers that are ready, from the
// supervisor's status, and alive (a worker killed a moment ago is ready
// until the supervisor has reaped it).
func (s *server) servingPIDs() []int {
	s.t.Helper()
	var out []int
	for _, sl := range s.status().Slots {
		if sl.Ready && proc.Alive(sl.PID) {
			out = append(out, sl.PID)
		}
	}
	return out
}

// workerPIDs returns the supervisor's child processes.
func (s *server) workerPIDs() []int {
	return proc.Children(s.cmd.Process.Pid)
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

// listeningInodes returns the inodes of the TCP sockets (IPv4 and IPv6)
// listening on port.
func listeningInodes(t testing.TB, port int) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	forEachListening(t, func(p int, inode string) {
		if p == port {
			out[inode] = true
		}
	})
	return out
}

// listeningPorts counts pid's listening TCP sockets by port.
func listeningPorts(t testing.TB, pid int) map[int]int {
	t.Helper()
	mine := socketInodes(pid)
	out := map[int]int{}
	forEachListening(t, func(port int, inode string) {
		if mine[inode] {
			out[port]++
		}
	})
	return out
}

// forEachListening calls found with the port and inode of every listening
// TCP socket (IPv4 and IPv6). It asks the kernel over netlink (sock_diag)
// for listening sockets only: /proc/net/tcp lists every connection, and
// takes seconds to read when a load test left many thousands in TIME_WAIT.
func forEachListening(t testing.TB, found func(port int, inode string)) {
	t.Helper()
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if err := diagListening(family, found); err != nil {
			t.Fatalf("list listening sockets: %v", err)
		}
	}
}

// diagListening calls found for each of family's listening TCP sockets.
func diagListening(family uint8, found func(port int, inode string)) error {
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
			found(int(binary.BigEndian.Uint16(m.Data[offSport:])),
				strconv.FormatUint(uint64(binary.NativeEndian.Uint32(m.Data[offInode:])), 10))
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

// common returns the elements of a that b holds too.
func common[T comparable](a, b []T) []T {
	return slices.DeleteFunc(slices.Clone(a), func(x T) bool { return !slices.Contains(b, x) })
}

// sameSet reports whether a and b hold the same pids.
func sameSet(a, b []int) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
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

// statusOf runs `lancelot status --json` for the supervisor in pidFile.
func statusOf(pidFile string) (supervisor.Status, error) {
	return lancelotStatus("--pid-file", pidFile)
}

// statusOfPID runs `lancelot status --json` for the supervisor pid, which
// the pid file may no longer name (a binary upgrade's predecessor).
func statusOfPID(pid int) (supervisor.Status, error) {
	return lancelotStatus("--pid", strconv.Itoa(pid))
}

// lancelotStatus runs `lancelot status --json` with args naming the
// supervisor, within 5 s.
func lancelotStatus(args ...string) (supervisor.Status, error) {
	var st supervisor.Status
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, binPath, append(append([]string{"status"}, args...), "--json")...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return st, fmt.Errorf("lancelot status: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return st, fmt.Errorf("lancelot status: %w in %q", err, out)
	}
	return st, nil
}

func mustStatus(t testing.TB, pidFile string) supervisor.Status {
	t.Helper()
	st, err := statusOf(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitStatus polls `lancelot status` until cond holds, and returns that
// status; it fails the test with the last one seen after timeout.
func waitStatus(t testing.TB, pidFile string, timeout time.Duration, what string, cond func(supervisor.Status) bool) supervisor.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		st, err := statusOf(pidFile)
		if err == nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s; last status %+v, err %v", timeout, what, st, err)
		}
		time.Sleep(delay)
	}
}

func waitQuiet(t testing.TB, pidFile string, timeout time.Duration) supervisor.Status {
	t.Helper()
	return waitStatus(t, pidFile, timeout, "quiet (every slot ready, nothing in flight)", supervisor.Status.Quiet)
}

// slotPIDs are the slots' worker pids, in slot order.
func slotPIDs(st supervisor.Status) []int {
	pids := make([]int, len(st.Slots))
	for i, sl := range st.Slots {
		pids[i] = sl.PID
	}
	return pids
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
	lancelottest.WaitFor(t, 2*time.Second, fmt.Sprintf("no process left in the group of lancelot %q", args), func() bool {
		return errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH)
	})

	return r
}
