package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
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
