package handoff_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/config"
	"github.com/camelot/lancelot/shared/handoff"
)

// The test binary impersonates the processes a handoff starts, as
// os/exec's tests do: with envChild set, TestMain runs that child's role
// instead of the tests.
const envChild = "HANDOFF_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(envChild) {
	case "":
		os.Exit(m.Run())
	case "worker":
		os.Exit(workerChild())
	case "upgrade":
		os.Exit(upgradeChild())
	case "signals":
		os.Exit(signalsChild())
	}
	os.Exit(2)
}

// workerChild decodes a worker handoff and prints what it found.
func workerChild() int {
	w, err := handoff.ReadWorker()
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	var addrs []string
	for _, s := range w.Sockets {
		ln, err := net.FileListener(s.File)
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		addrs = append(addrs, fmt.Sprintf("%d=%s", s.ID, ln.Addr()))
	}
	_, ctrlErr := w.Control.Stat()
	fmt.Printf("listen=%s sockets=%s control=%v env=%q args=%q\n", w.Config.Listen, strings.Join(addrs, ","),
		ctrlErr == nil, os.Getenv("LANCELOT_WORKER_CONFIG"), os.Args[1:])
	return 0
}

// upgradeChild decodes an upgrade handoff, reports itself ready and prints
// what it found.
func upgradeChild() int {
	u, err := handoff.ReadUpgrade()
	if err != nil || u == nil {
		fmt.Println("error:", err)
		return 1
	}
	var addrs []string
	for _, f := range u.Sockets {
		ln, err := net.FileListener(f)
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		addrs = append(addrs, ln.Addr().String())
	}
	handoff.ReportPID(u.Ready, os.Getpid())
	handoff.ReportReady(u.Ready)
	fmt.Printf("sockets=%s running=%d configured=%d launcher=%d\n", strings.Join(addrs, ","), u.Running, u.Configured, u.Launcher)
	return 0
}

// signalsChild discards the operator signals, tells its parent it did, and
// waits to be stopped.
func signalsChild() int {
	handoff.IgnoreOperatorSignals()
	fmt.Println("ignoring")
	time.Sleep(10 * time.Second)
	return 3
}

func listener(t *testing.T) (*os.File, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, ln.Addr().String()
}

func TestWorkerRoundTrip(t *testing.T) {
	f1, a1 := listener(t)
	f2, a2 := listener(t)
	ctrl, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer ctrl.Close()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:7"
	w := handoff.Worker{Slot: 3, Config: cfg, Control: ctrl,
		Sockets: []handoff.Socket{{ID: 5, File: f1}, {ID: 2, File: f2}}}
	exe, _ := os.Executable()
	cmd, err := w.Command(exe, append(os.Environ(), envChild+"=worker", "NOTIFY_SOCKET=/x", "LISTEN_FDS=1"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("worker child: %v\n%s", err, out)
	}
	// /proc/self/exe in the test binary is the test binary, which sees the
	// worker's arguments after argv[0].
	want := fmt.Sprintf("listen=127.0.0.1:7 sockets=5=%s,2=%s control=true env=\"\" args=[\"worker\" \"--slot\" \"3\"]\n", a1, a2)
	if string(out) != want {
		t.Errorf("worker child printed %q, want %q", out, want)
	}
	for _, kv := range cmd.Env {
		if strings.HasPrefix(kv, "NOTIFY_SOCKET=") || strings.HasPrefix(kv, "LISTEN_") {
			t.Errorf("worker environment keeps %q, which belongs to the supervisor only", kv)
		}
	}
	var got config.Config
	for _, kv := range cmd.Env {
		if v, ok := strings.CutPrefix(kv, "LANCELOT_WORKER_CONFIG="); ok {
			if err := json.Unmarshal([]byte(v), &got); err != nil || got.Listen != cfg.Listen {
				t.Errorf("encoded config = %+v, %v", got, err)
			}
		}
	}
}

func TestReadWorkerOutsideServe(t *testing.T) {
	if _, err := handoff.ReadWorker(); err == nil || !strings.Contains(err.Error(), "not started by serve") {
		t.Errorf("ReadWorker() outside a worker = %v, want a 'not started by serve' error", err)
	}
}

func TestUpgradeRoundTrip(t *testing.T) {
	f1, a1 := listener(t)
	f2, a2 := listener(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	exe, _ := os.Executable()
	u := handoff.Upgrade{Sockets: []*os.File{f1, f2}, Ready: w, Running: 3, Configured: 2, Launcher: 4242}
	cmd := u.Command(exe, nil, append(os.Environ(), envChild+"=upgrade", "LISTEN_PID=1"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := handoff.Start(cmd); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var pid int
	err = handoff.ReadReport(r, func(p int) { pid = p })
	if werr := cmd.Wait(); werr != nil {
		t.Fatalf("upgrade child: %v\n%s", werr, out.String())
	}
	if err != nil || pid != cmd.Process.Pid {
		t.Errorf("ReadReport = %v with pid %d, want ready with pid %d", err, pid, cmd.Process.Pid)
	}
	if want := fmt.Sprintf("sockets=%s,%s running=3 configured=2 launcher=4242\n", a1, a2); out.String() != want {
		t.Errorf("upgrade child printed %q, want %q", out.String(), want)
	}
}

func TestReadReport(t *testing.T) {
	for _, tc := range []struct {
		in      string
		wantPID int
		wantErr bool
	}{
		// Success cases
		{"pid 42\nready\n", 42, false},
		{"ready\n", 0, false},
		// Failure cases
		{"pid 42\n", 42, true},       // successor died after the launcher reported it
		{"", 0, true},                // launcher died
		{"pid x\nready\n", 0, true},  // garbage
		{"hello\n", 0, true},         // garbage
		{"pid 42\nread", 42, true},   // cut short
		{"\x01", 0, true},            // not this protocol
		{"pid -3\nready\n", 0, true}, // not a pid
	} {
		pid := 0
		err := handoff.ReadReport(strings.NewReader(tc.in), func(p int) { pid = p })
		if (err != nil) != tc.wantErr || pid != tc.wantPID {
			t.Errorf("ReadReport(%q) = %v with pid %d; want error %v, pid %d", tc.in, err, pid, tc.wantErr, tc.wantPID)
		}
	}
}

// TestStartProtectsChildren sends a child the operator signals Start
// blocks the moment it starts, before its runtime could handle them: they
// must neither kill nor stop it. Once it ignores them, HUP too does no
// harm, and TERM still works.
func TestStartProtectsChildren(t *testing.T) {
	exe, _ := os.Executable()
	for range 5 {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), envChild+"=signals")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := handoff.Start(cmd); err != nil {
			t.Fatal(err)
		}
		for _, sig := range []syscall.Signal{syscall.SIGUSR2, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGUSR1} {
			cmd.Process.Signal(sig)
		}
		line := make([]byte, len("ignoring\n"))
		if _, err := io.ReadFull(stdout, line); err != nil || string(line) != "ignoring\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child said %q, %v; want it alive and ignoring (status %v)", line, err, cmd.ProcessState)
		}
		for _, sig := range []syscall.Signal{syscall.SIGUSR2, syscall.SIGTTIN, syscall.SIGHUP} {
			cmd.Process.Signal(sig) // after its runtime is up: ignored
		}
		cmd.Process.Signal(syscall.SIGTERM)
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
			t.Fatalf("child ended with %v, want killed by SIGTERM", err)
		}
	}
}
