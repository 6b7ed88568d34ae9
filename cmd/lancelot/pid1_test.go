package main

// serve as PID 1, without a container engine: the binary runs as the first
// process of a new PID namespace (util-linux unshare), as it does in a
// container (see cmd/internal/pid1).

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camelot/lancelot/cmd/internal/proc"
	"github.com/camelot/lancelot/shared/lancelottest"
)

// TestPID1UpgradeKeepsServing: a USR2 under load fails no client, and the
// namespace lives on with the new supervisor as the init's child; a HUP
// then fails nobody either, and a TERM ends it all with status 0.
func TestPID1UpgradeKeepsServing(t *testing.T) {
	skipIfShort(t)
	ns := startInNamespace(t, "--workers", "2")
	old, oldNS := ns.supervisor(), ns.pidFromFile()
	l := startLoad(t, ns.addr, 4, 4)
	l.waitExchanges(500)
	syscall.Kill(ns.init, syscall.SIGUSR2)
	var sup int
	ns.waitFor(15*time.Second, "a new supervisor ready, the init's child", func() bool {
		sup = ns.newSupervisor(old)
		return sup != 0 && ns.pidFromFile() != oldNS
	})
	l.waitExchanges(500)
	before := proc.Children(sup)
	syscall.Kill(ns.init, syscall.SIGHUP)
	ns.waitFor(15*time.Second, "HUP: two workers, each new", func() bool {
		now := proc.Children(sup)
		return len(now) == 2 && !slices.ContainsFunc(now, func(pid int) bool { return slices.Contains(before, pid) })
	})
	l.waitExchanges(500)
	// The load's long-lived clients keep the old supervisor draining
	// (release 0.3.0's peers drain); it exits when they leave.
	l.requireNoFailures()
	ns.waitFor(35*time.Second, "the old supervisor exited", func() bool { return !proc.Exists(old) })
	if ns.hasExited() {
		t.Fatalf("the namespace ended after USR2: %v", ns.waitErr)
	}
	if !ns.answers() {
		t.Errorf("the new supervisor %d does not answer", sup)
	}
	if out, err := ns.healthcheck(); err != nil || !strings.Contains(out, ns.addr+" answered") {
		t.Errorf("healthcheck in the namespace: %v: %s", err, out)
	}
	if n := len(proc.Children(sup)); n != 2 {
		t.Errorf("the new supervisor has %d workers, want 2", n)
	}
	syscall.Kill(ns.init, syscall.SIGTERM)
	if err := ns.wait(15 * time.Second); err != nil {
		t.Errorf("exit after TERM to PID 1: %v, want status 0", err)
	}
}

// TestPID1OrphansAndSignals: a process orphaned in the namespace is re-parented
// to PID 1, which reaps it when it exits (no zombie left); TTIN and TTOU,
// then QUIT reach the supervisor (QUIT: an immediate stop) and PID 1
// exits 0 with it.
func TestPID1OrphansAndSignals(t *testing.T) {
	skipIfShort(t)
	ns := startInNamespace(t, "--workers", "1")
	orphan := ns.orphan()
	if p := proc.Parent(orphan); p != ns.init {
		t.Fatalf("orphan %d has parent %d, want PID 1 (%d)", orphan, p, ns.init)
	}
	syscall.Kill(orphan, syscall.SIGKILL)
	ns.waitFor(10*time.Second, fmt.Sprintf("orphan %d reaped", orphan), func() bool { return !proc.Exists(orphan) })
	if !ns.answers() {
		t.Errorf("no answer after the orphan's exit")
	}
	// TTIN and TTOU reach the supervisor through PID 1.
	sup := ns.supervisor()
	syscall.Kill(ns.init, syscall.SIGTTIN)
	ns.waitFor(10*time.Second, "TTIN: two workers", func() bool { return len(proc.Children(sup)) == 2 })
	syscall.Kill(ns.init, syscall.SIGTTOU)
	ns.waitFor(10*time.Second, "TTOU: one worker", func() bool { return len(proc.Children(sup)) == 1 })
	// Outside the namespace PID 1 is not lancelot: the check says so.
	if out, err := exec.Command(binPath, "healthcheck").CombinedOutput(); err == nil || !strings.Contains(string(out), "PID 1 is not") {
		t.Errorf("healthcheck outside the namespace: %v: %s, want a failure naming PID 1", err, out)
	}
	syscall.Kill(ns.init, syscall.SIGQUIT)
	if err := ns.wait(10 * time.Second); err != nil {
		t.Errorf("exit after QUIT to PID 1: %v, want status 0", err)
	}
}

// TestPID1ExitsWithSupervisor: PID 1 exits with its supervisor's status,
// 128+9 when the supervisor was killed.
func TestPID1ExitsWithSupervisor(t *testing.T) {
	skipIfShort(t)
	ns := startInNamespace(t, "--workers", "1")
	syscall.Kill(ns.supervisor(), syscall.SIGKILL)
	err := ns.wait(10 * time.Second)
	var exit *exec.ExitError
	// unshare exits with PID 1's status.
	if !errors.As(err, &exit) || exit.ExitCode() != 128+int(syscall.SIGKILL) {
		t.Errorf("exit after the supervisor was killed: %v, want status 137", err)
	}
}

// pidNamespace is a `lancelot serve` running as PID 1 of a PID namespace.
type pidNamespace struct {
	*server
	t    *testing.T
	init int // PID 1's pid, as this test sees it
}

// startInNamespace runs serve as PID 1 of a new PID namespace, with its
// own /proc, and waits until it answers. unshare --kill-child ends the
// namespace if the test kills unshare.
func startInNamespace(t *testing.T, args ...string) *pidNamespace {
	t.Helper()
	unshare := requireTool(t, "unshare")
	if out, err := exec.Command(unshare, "--pid", "--fork", "--mount-proc", "true").CombinedOutput(); err != nil {
		skipOrFail(t, "cannot make a PID namespace: %v: %s", err, out)
	}
	wrapper := []string{unshare, "--pid", "--fork", "--mount-proc", "--kill-child"}
	s := launchServerVia(t, wrapper, append([]string{"serve", "--listen", "", "--pid-file", ""}, args...), nil)
	ns := &pidNamespace{server: s, t: t}
	ns.waitFor(10*time.Second, "PID 1 started", func() bool {
		kids := proc.Children(s.cmd.Process.Pid)
		if len(kids) == 1 {
			ns.init = kids[0]
		}
		return ns.init != 0
	})
	// The pid file holds the supervisor's pid in the namespace: written
	// when it is ready.
	ns.waitFor(10*time.Second, "the supervisor ready", func() bool { return s.pidFromFile() > 0 })
	if !ns.answers() {
		t.Fatalf("no answer from the supervisor, ready")
	}
	return ns
}

// supervisor is PID 1's child that runs serve; the test fails without one.
func (ns *pidNamespace) supervisor() int {
	ns.t.Helper()
	pid := ns.supervisorOrZero()
	if pid == 0 {
		ns.t.Fatalf("PID 1 (%d) has no supervisor child: %v", ns.init, proc.Children(ns.init))
	}
	return pid
}

// supervisorOrZero is the one child of PID 1 that runs serve, or 0.
func (ns *pidNamespace) supervisorOrZero() int {
	sups := ns.supervisors()
	if len(sups) != 1 {
		return 0
	}
	return sups[0]
}

// newSupervisor is the child of PID 1 that runs serve and is not old, or 0.
func (ns *pidNamespace) newSupervisor(old int) int {
	for _, pid := range ns.supervisors() {
		if pid != old {
			return pid
		}
	}
	return 0
}

// supervisors are PID 1's live children that run serve.
func (ns *pidNamespace) supervisors() []int {
	var sups []int
	for _, pid := range proc.Children(ns.init) {
		if proc.Alive(pid) && slices.Contains(proc.Cmdline(pid), "serve") {
			sups = append(sups, pid)
		}
	}
	return sups
}

// answers reports whether the server answers a question.
func (ns *pidNamespace) answers() bool {
	a, err := lancelottest.AskOnce(ns.addr, lancelottest.QName, 2*time.Second)
	return err == nil && a == lancelottest.AName
}

// healthcheck runs `lancelot healthcheck` inside the namespace, where it
// reads PID 1's command line, and returns its output.
func (ns *pidNamespace) healthcheck() (string, error) {
	ns.t.Helper()
	nsenter := requireTool(ns.t, "nsenter")
	out, err := exec.Command(nsenter, "--target", strconv.Itoa(ns.init), "--pid", "--mount", "--",
		binPath, "healthcheck").CombinedOutput()
	return string(out), err
}

// orphan leaves a process in the namespace whose parent has exited (a
// shell that started it in the background) and returns its pid.
func (ns *pidNamespace) orphan() int {
	ns.t.Helper()
	nsenter := requireTool(ns.t, "nsenter")
	tag := "600." + strconv.Itoa(os.Getpid()) // sleep's argument, unique to this test
	cmd := exec.Command(nsenter, "--target", strconv.Itoa(ns.init), "--pid", "--mount", "--",
		"/bin/sh", "-c", `sleep "$0" >/dev/null 2>&1 & exit 0`, tag)
	if out, err := cmd.CombinedOutput(); err != nil {
		ns.t.Fatalf("nsenter: %v: %s", err, out)
	}
	var pid int
	ns.waitFor(10*time.Second, "the orphan re-parented to PID 1", func() bool {
		for _, p := range proc.Children(ns.init) {
			if slices.Contains(proc.Cmdline(p), tag) {
				pid = p
			}
		}
		return pid != 0
	})
	ns.t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}
