package worker

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// PinToCPU pins the calling process to one CPU: the slot-th (modulo their
// number) of the CPUs it may run on, as nginx's worker_cpu_affinity auto
// does. It returns the CPU chosen.
//
// sched_setaffinity applies to one thread, and the Go runtime has started
// several by now, so every thread of the process is pinned; threads started
// later inherit the mask from the thread that creates them.
func PinToCPU(slot int) (int, error) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return -1, fmt.Errorf("cpu affinity: %w", err)
	}
	cpus := make([]int, 0, allowed.Count())
	for c := range len(allowed) * 64 {
		if allowed.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) == 0 {
		return -1, fmt.Errorf("cpu affinity: no CPU allowed")
	}
	cpu := cpus[slot%len(cpus)]
	var one unix.CPUSet
	one.Set(cpu)
	// Twice: a thread started during the first pass by a thread not yet
	// pinned is caught by the second.
	for range 2 {
		if err := pinThreads(&one); err != nil {
			return -1, fmt.Errorf("cpu affinity: CPU %d: %w", cpu, err)
		}
	}
	return cpu, nil
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
