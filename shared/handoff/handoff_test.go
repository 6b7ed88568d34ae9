package handoff_test

import (
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
	"github.com/camelot/lancelot/shared/lancelottest"
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
	fmt.Printf("listen=%s answers=%d sockets=%s control=%v env=%q args=%q\n", strings.Join(w.Config.Listen, ","), len(w.Config.Answers),
		strings.Join(addrs, ","), ctrlErr == nil, os.Getenv("LANCELOT_WORKER_CONFIG"), os.Args[1:])
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

func TestWorkerRoundTrip(t *testing.T) {
	f1, a1 := lancelottest.ListenerFile(t)
	f2, a2 := lancelottest.ListenerFile(t)
	ctrl, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer ctrl.Close()
	cfg := config.Default()
	cfg.Listen = []string{"127.0.0.1:7"}
	// A table far above the 128 KiB Linux allows one environment string.
	cfg.Answers = map[string]string{}
	for i := range 20000 {
		cfg.Answers[fmt.Sprintf("What is the airspeed of swallow %d?", i)] = fmt.Sprintf("Swallow %d flies.", i)
	}
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
	cmd.ExtraFiles[1].Close()
	want := fmt.Sprintf("listen=127.0.0.1:7 answers=20000 sockets=5=%s,2=%s control=true env=\"\" args=[\"worker\" \"--slot\" \"3\"]\n", a1, a2)
	if string(out) != want {
		t.Errorf("worker child printed %q, want %q", out, want)
	}
	for _, kv := range cmd.Env {
		if strings.HasPrefix(kv, "NOTIFY_SOCKET=") || strings.HasPrefix(kv, "LISTEN_") {
			t.Errorf("worker environment keeps %q, which belongs to the supervisor only", kv)
		}
	}
}

func TestReadWorkerOutsideServe(t *testing.T) {
	if _, err := handoff.ReadWorker(); err == nil || !strings.Contains(err.Error(), "not started by serve") {
		t.Errorf("ReadWorker() outside a worker = %v, want a 'not started by serve' error", err)
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
