package worker

import (
	"slices"
	"testing"
)

// TestCPUShare: each slot gets a block of share CPUs (its GOMAXPROCS),
// disjoint from the other slots' while they fit, wrapping around after.
func TestCPUShare(t *testing.T) {
	for _, tc := range []struct {
		cpus        []int
		slot, share int
		want        []int
	}{
		// fewer workers than CPUs: a block each
		{[]int{0, 1, 2, 3}, 0, 2, []int{0, 1}},
		{[]int{0, 1, 2, 3}, 1, 2, []int{2, 3}},
		{[]int{0, 1}, 0, 2, []int{0, 1}},
		{[]int{2, 5, 7, 9, 11, 13}, 1, 3, []int{9, 11, 13}},
		// as many or more workers than CPUs: one CPU each, wrapping
		{[]int{0, 1}, 0, 1, []int{0}},
		{[]int{0, 1}, 3, 1, []int{1}},
		// a share beyond the CPUs, or none: all of them, or one
		{[]int{0, 1}, 0, 4, []int{0, 1}},
		{[]int{4, 6}, 1, 0, []int{6}},
		// a share that does not divide the CPUs wraps
		{[]int{0, 1, 2}, 1, 2, []int{2, 0}},
	} {
		if got := cpuShare(tc.cpus, tc.slot, tc.share); !slices.Equal(got, tc.want) {
			t.Errorf("cpuShare(%v, slot %d, share %d) = %v, want %v", tc.cpus, tc.slot, tc.share, got, tc.want)
		}
	}
}
