package main

// The default worker count under a CPU quota: the test makes a cgroup of
// its own with a quota of one CPU and starts serve inside it.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"github.com/camelot/lancelot/shared/lancelottest"
)

// TestDefaultWorkersUnderCPUQuota: on a host with more CPUs than the
// quota allows, serve without --workers starts one worker per CPU of the
// quota, says so in its log, and gives each worker's runtime that many Ps.
func TestDefaultWorkersUnderCPUQuota(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "making a cgroup needs root")
	}
	procs := []string{"sh", "-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, cpuQuotaCgroup(t, 1)}
	s := launchServerVia(t, procs, []string{"serve", "--listen", "", "--pid-file", "", "--log-level", "debug"}, nil)
	s.waitReady()
	st := s.waitQuiet()
	if st.Running != 1 || st.Configured != 1 || len(st.Slots) != 1 {
		t.Errorf("under a one-CPU quota: running %d, configured %d, slots %d; want 1 each", st.Running, st.Configured, len(st.Slots))
	}
	s.waitFor(5*time.Second, "the worker's gomaxprocs logged", func() bool { return strings.Contains(s.logs.String(), `msg="worker starting"`) })
	logs := s.logs.String()
	if !strings.Contains(logs, "workers=1 cpus=1 source=cgroup-quota") {
		t.Errorf("the log does not say where the worker count came from:\n%s", logs)
	}
	if !regexp.MustCompile(`msg="worker starting" .*gomaxprocs=1 `).MatchString(logs) {
		t.Errorf("the worker's GOMAXPROCS is not the quota's one CPU:\n%s", logs)
	}
}

// cpuQuotaCgroup makes a cgroup that allows cpus CPUs, in the hierarchy
// that holds this process's cpu controller (v1, or v2 where its parent
// delegates cpu), and removes it when the test ends, killing by PID
// whatever still runs in it.
func cpuQuotaCgroup(t *testing.T, cpus int) string {
	t.Helper()
	parent, v1, err := cpuCgroupParent()
	if err != nil {
		skipOrFail(t, "no cgroup with the cpu controller to make one under: %v", err)
	}
	dir := filepath.Join(parent, fmt.Sprintf("lancelot-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeCgroup(t, dir) })
	var writeErr error
	if v1 {
		writeErr = os.WriteFile(filepath.Join(dir, "cpu.cfs_quota_us"), []byte(strconv.Itoa(cpus*100000)), 0)
		if writeErr == nil {
			writeErr = os.WriteFile(filepath.Join(dir, "cpu.cfs_period_us"), []byte("100000"), 0)
		}
	} else {
		writeErr = os.WriteFile(filepath.Join(dir, "cpu.max"), []byte(fmt.Sprintf("%d 100000", cpus*100000)), 0)
	}
	if writeErr != nil {
		t.Fatalf("set the quota of %s: %v", dir, writeErr)
	}
	return dir
}

// cpuCgroupParent is the directory of this process's cgroup in the
// hierarchy with the cpu controller: the v1 one if cpu is on v1, else the
// cgroup2 one, if it delegates cpu to its children.
func cpuCgroupParent() (dir string, v1 bool, err error) {
	self, err := procfs.Self()
	if err != nil {
		return "", false, err
	}
	groups, err := self.Cgroups()
	if err != nil {
		return "", false, err
	}
	mounts, err := procfs.GetMounts()
	if err != nil {
		return "", false, err
	}
	for _, g := range groups {
		if slices.Contains(g.Controllers, "cpu") {
			if m := cgroupMount(mounts, "cgroup", "cpu"); m != nil {
				return filepath.Join(m.MountPoint, g.Path), true, nil
			}
		}
	}
	for _, g := range groups {
		if m := cgroupMount(mounts, "cgroup2", ""); g.HierarchyID == 0 && m != nil {
			dir := filepath.Join(m.MountPoint, g.Path)
			b, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
			if slices.Contains(strings.Fields(string(b)), "cpu") {
				return dir, false, nil
			}
		}
	}
	return "", false, errors.New("the cpu controller is on neither v1 nor a delegating cgroup2")
}

// cgroupMount finds the cgroup file system of type fstype (with option opt).
func cgroupMount(mounts []*procfs.MountInfo, fstype, opt string) *procfs.MountInfo {
	for _, m := range mounts {
		if _, ok := m.SuperOptions[opt]; m.FSType == fstype && m.Root == "/" && (opt == "" || ok) {
			return m
		}
	}
	return nil
}

// removeCgroup kills what still runs in dir, waits until it is empty and
// removes it.
func removeCgroup(t *testing.T, dir string) {
	pids := func() []string {
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		return strings.Fields(string(b))
	}
	for _, p := range pids() {
		if pid, err := strconv.Atoi(p); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if !lancelottest.Poll(10*time.Second, func() bool { return len(pids()) == 0 && os.Remove(dir) == nil }) {
		t.Errorf("cgroup %s not removed; processes %v", dir, pids())
	}
}
