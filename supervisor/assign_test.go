package supervisor

import (
	"reflect"
	"testing"
)

func TestAssign(t *testing.T) {
	for _, tc := range []struct {
		sockets, slots int
		want           [][]int
	}{
		// One socket per slot: slot i serves socket i.
		{1, 1, [][]int{{0}}},
		{3, 3, [][]int{{0}, {1}, {2}}},
		// More sockets than slots (after TTOU, or socket activation):
		// socket k goes to slot k mod slots.
		{2, 1, [][]int{{0, 1}}},
		{4, 2, [][]int{{0, 2}, {1, 3}}},
		{5, 2, [][]int{{0, 2, 4}, {1, 3}}},
		{7, 3, [][]int{{0, 3, 6}, {1, 4}, {2, 5}}},
		// More slots than sockets: slot i shares socket i mod sockets.
		{1, 3, [][]int{{0}, {0}, {0}}},
		{2, 5, [][]int{{0}, {1}, {0}, {1}, {0}}},
	} {
		if got := assign(tc.sockets, tc.slots); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("assign(%d, %d) = %v, want %v", tc.sockets, tc.slots, got, tc.want)
		}
	}
}

// TestAssignCovers checks the invariant over many shapes: every socket is
// served by some slot, every slot serves at least one socket, and no slot
// lists a socket twice or one that does not exist.
func TestAssignCovers(t *testing.T) {
	for sockets := 1; sockets <= 12; sockets++ {
		for slots := 1; slots <= 12; slots++ {
			plan := assign(sockets, slots)
			if len(plan) != slots {
				t.Fatalf("assign(%d, %d) has %d slots", sockets, slots, len(plan))
			}
			served := make([]int, sockets)
			for i, socks := range plan {
				if len(socks) == 0 {
					t.Errorf("assign(%d, %d): slot %d serves no socket", sockets, slots, i)
				}
				seen := map[int]bool{}
				for _, k := range socks {
					if k < 0 || k >= sockets || seen[k] {
						t.Errorf("assign(%d, %d): slot %d = %v", sockets, slots, i, socks)
					}
					seen[k] = true
					served[k]++
				}
			}
			for k, n := range served {
				if n == 0 {
					t.Errorf("assign(%d, %d) = %v: socket %d unserved", sockets, slots, plan, k)
				}
				// With at least as many slots as sockets, each socket's
				// own slot is first in line: slot k serves socket k first.
				if k < slots && plan[k][0] != k {
					t.Errorf("assign(%d, %d): slot %d serves %v first, want socket %d", sockets, slots, k, plan[k], k)
				}
			}
		}
	}
}
