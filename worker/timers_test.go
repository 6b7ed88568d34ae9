package worker

import (
	"math/rand/v2"
	"testing"
)

func TestTimerHeap(t *testing.T) {
	var h timerHeap
	live := map[*elConn]bool{}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		switch op := rng.IntN(4); {
		case op < 2 || len(live) == 0:
			c := &elConn{}
			h.push(c, rng.Int64N(1000))
			live[c] = true
		case op == 2:
			c := h[rng.IntN(len(h))]
			h.fix(c, rng.Int64N(1000))
		default:
			c := h[rng.IntN(len(h))]
			h.remove(c)
			delete(live, c)
			if c.hidx != -1 {
				t.Fatalf("step %d: removed connection keeps index %d", i, c.hidx)
			}
		}
		checkHeap(t, h, len(live))
	}
}

func checkHeap(t *testing.T, h timerHeap, n int) {
	t.Helper()
	if len(h) != n {
		t.Fatalf("heap holds %d, want %d", len(h), n)
	}
	for i, c := range h {
		if int(c.hidx) != i {
			t.Fatalf("h[%d].hidx = %d", i, c.hidx)
		}
		if i > 0 && h[(i-1)/2].due > c.due {
			t.Fatalf("h[%d].due = %d below its parent's %d", i, c.due, h[(i-1)/2].due)
		}
	}
}
