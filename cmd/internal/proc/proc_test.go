package proc_test

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/camelot/lancelot/cmd/internal/proc"
	"github.com/camelot/lancelot/shared/lancelottest"
)

func TestProcesses(t *testing.T) {
	me := os.Getpid()
	if !proc.Alive(me) || !proc.Exists(me) || proc.Parent(me) != os.Getppid() {
		t.Errorf("this process: alive %v, exists %v, parent %d; want true, true, %d", proc.Alive(me), proc.Exists(me), proc.Parent(me), os.Getppid())
	}
	if args := proc.Cmdline(me); len(args) == 0 || args[0] != os.Args[0] {
		t.Errorf("Cmdline(self) = %q, want %q first", args, os.Args[0])
	}
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	pid := child.Process.Pid
	if !slices.Contains(proc.Children(me), pid) {
		t.Errorf("children %v; want %d among them", proc.Children(me), pid)
	}
	// Start returns once the child is forked; its command line is sleep's
	// only once it has exec'd.
	lancelottest.WaitFor(t, 5*time.Second, "the child found by its argument", func() bool { return proc.ChildRunning(me, "30") == pid })
	if got := proc.ChildRunning(me, "40"); got != 0 {
		t.Errorf("ChildRunning(40) = %d, want 0", got)
	}
	child.Process.Signal(syscall.SIGSTOP)
	lancelottest.WaitFor(t, 5*time.Second, "the SIGSTOPped child stopped", func() bool { return proc.AllThreadsStopped(pid) })
	child.Process.Kill()
	child.Process.Wait()
	if proc.Alive(pid) || proc.Exists(pid) || proc.Parent(pid) != 0 || proc.Cmdline(pid) != nil {
		t.Errorf("a reaped child still reads as there")
	}
}

// TestIdentify: sleep is sleep, started a moment ago, not lancelot; a
// reaped pid is gone. (A lancelot supervisor's identity is checked by the
// commands' process tests against the real binary.)
func TestIdentify(t *testing.T) {
	before := time.Now().Add(-2 * time.Second) // /proc's start time is up to 1 s early
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	pid := child.Process.Pid
	lancelottest.WaitFor(t, 5*time.Second, "the child exec'd sleep", func() bool { return proc.ChildRunning(os.Getpid(), "30") == pid })
	id, err := proc.Identify(pid)
	if err != nil || id.Program != "sleep" || id.Lancelot || id.Supervisor() || !slices.Equal(id.Args, []string{"sleep", "30"}) ||
		id.Started.Before(before) || id.Started.After(time.Now()) {
		t.Errorf("Identify(sleep) = %+v, %v; want sleep, not lancelot, started just now", id, err)
	}
	child.Process.Kill()
	child.Process.Wait()
	if _, err := proc.Identify(pid); !errors.Is(err, proc.ErrGone) {
		t.Errorf("Identify(reaped child) error = %v, want ErrGone", err)
	}
	for _, tc := range []struct {
		id   proc.Identity
		want bool
	}{
		{proc.Identity{Lancelot: true, Args: []string{"/usr/bin/lancelot", "serve", "--workers", "2"}}, true},
		{proc.Identity{Lancelot: true, Args: []string{"/usr/bin/lancelot", "worker", "--slot", "0"}}, false},
		{proc.Identity{Lancelot: false, Args: []string{"/bin/sleep", "serve"}}, false},
		{proc.Identity{Lancelot: true, Args: []string{"/usr/bin/lancelot"}}, false},
	} {
		if got := tc.id.Supervisor(); got != tc.want {
			t.Errorf("%+v.Supervisor() = %v, want %v", tc.id, got, tc.want)
		}
	}
}
