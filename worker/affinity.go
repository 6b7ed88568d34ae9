package worker

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// PinToCPUs pins the calling process to its share of the CPUs it may run
// on: share CPUs (its GOMAXPROCS: the available CPUs divided among the
// workers), the slot-th block of them, wrapping around, so that workers
// that together fit the CPUs get disjoint blocks, as nginx's
// worker_cpu_affinity auto does one CPU each. It returns the CPUs chosen.
//
// sched_setaffinity applies to one thread, and the Go runtime has started
// several by now, so every thread of the process is pinned; threads started
// later inherit the mask from the thread that creates them.
func PinToCPUs(slot, share int) ([]int, error) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return nil, fmt.Errorf("cpu affinity: %w", err)
	}
	cpus := make([]int, 0, allowed.Count())
	for c := range len(allowed) * 64 {
		if allowed.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("cpu affinity: no CPU allowed")
	}
	chosen := cpuShare(cpus, slot, share)
	var set unix.CPUSet
	for _, c := range chosen {
		set.Set(c)
	}
	// Twice: a thread started during the first pass by a thread not yet
	// pinned is caught by the second.
	for range 2 {
		if err := pinThreads(&set); err != nil {
			return nil, fmt.Errorf("cpu affinity: CPUs %v: %w", chosen, err)
		}
	}
	return chosen, nil
}

// cpuShare is slot's block of share CPUs among cpus (at least one, at most
// all of them), starting at slot*share and wrapping around.
func cpuShare(cpus []int, slot, share int) []int {
	share = min(max(share, 1), len(cpus))
	out := make([]int, share)
	for j := range out {
		out[j] = cpus[(slot*share+j)%len(cpus)]
	}
	return out
}

func pinThreads(set *unix.CPUSet) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, set); err != nil {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	return nil
}
