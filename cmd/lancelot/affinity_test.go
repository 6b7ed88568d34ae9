package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/config"
)

func TestCPUAffinityPinsEachWorkerThread(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs two CPUs")
	}
	s := startServer(t, "--workers", "2", "--cpu-affinity")
	// A worker pins itself before it reports ready.
	st := s.waitQuiet()
	seen := map[string]bool{}
	for _, pid := range slotPIDs(st) {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
		var cpus string
		for _, task := range tasks {
			got := allowedCPUs(t, task)
			if cpus == "" {
				cpus = got
			}
			if got != cpus || strings.ContainsAny(got, ",-") {
				t.Errorf("worker %d: thread %s allowed CPUs %q, want the one CPU %q", pid, task, got, cpus)
			}
		}
		seen[cpus] = true
	}
	if len(seen) != 2 {
		t.Errorf("workers pinned to CPUs %v, want two different ones", seen)
	}
}

// TestCPUAffinityShareMatchesGOMAXPROCS: with fewer workers than CPUs,
// `--cpu-affinity` pins each worker to as many CPUs as its GOMAXPROCS
// (the available CPUs divided among the workers), every thread alike.
// (0.3.0: one CPU each, while its runtime ran GOMAXPROCS 2 on it.)
func TestCPUAffinityShareMatchesGOMAXPROCS(t *testing.T) {
	avail := config.AvailableCPUs().N
	if avail < 2 {
		t.Skip("needs two available CPUs")
	}
	s := startServer(t, "--workers", "1", "--cpu-affinity", "--log-level", "debug")
	st := s.waitQuiet()
	pid := slotPIDs(st)[0]
	var procs int
	s.waitFor(5*time.Second, "the worker's gomaxprocs logged", func() bool {
		m := regexp.MustCompile(fmt.Sprintf(`pid=%d .*gomaxprocs=(\d+)|gomaxprocs=(\d+).* pid=%d`, pid, pid)).FindStringSubmatch(s.logs.String())
		if m == nil {
			return false
		}
		procs, _ = strconv.Atoi(m[1] + m[2])
		return true
	})
	if procs != avail {
		t.Errorf("one worker's GOMAXPROCS = %d, want the %d available CPUs", procs, avail)
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	for _, task := range tasks {
		if n := countCPUList(t, allowedCPUs(t, task)); n != procs {
			t.Errorf("worker %d: thread %s may run on %d CPUs (%s), want its GOMAXPROCS %d", pid, task, n, allowedCPUs(t, task), procs)
		}
	}
}

// countCPUList counts the CPUs of a list such as "0-3,6".
func countCPUList(t *testing.T, list string) int {
	n := 0
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		b, err2 := a, error(nil)
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || b < a {
			t.Fatalf("CPU list %q: bad part %q", list, part)
		}
		n += b - a + 1
	}
	return n
}

func allowedCPUs(t *testing.T, statusFile string) string {
	b, err := os.ReadFile(statusFile)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no Cpus_allowed_list in %s", statusFile)
	return ""
}
