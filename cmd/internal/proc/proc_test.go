package proc_test

import (
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
	if !slices.Contains(proc.Children(me), pid) || proc.ChildRunning(me, "30") != pid || proc.ChildRunning(me, "40") != 0 {
		t.Errorf("children %v, ChildRunning(30) = %d; want %d among them", proc.Children(me), proc.ChildRunning(me, "30"), pid)
	}
	child.Process.Signal(syscall.SIGSTOP)
	lancelottest.WaitFor(t, 5*time.Second, "the SIGSTOPped child stopped", func() bool { return proc.AllThreadsStopped(pid) })
	child.Process.Kill()
	child.Process.Wait()
	if proc.Alive(pid) || proc.Exists(pid) || proc.Parent(pid) != 0 || proc.Cmdline(pid) != nil {
		t.Errorf("a reaped child still reads as there")
	}
}
