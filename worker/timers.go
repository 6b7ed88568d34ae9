package worker

// timerHeap is a loop's deadlines: a binary min-heap of connections keyed
// by elConn.due, each connection knowing its index. The key may be earlier
// than the connection's real deadline (see loop.rearm): a timer that fires
// early is moved, not acted on, so answering a question never touches the
// heap. Every connection of a loop is in it.
type timerHeap []*elConn

func (h timerHeap) next() (int64, bool) {
	if len(h) == 0 {
		return 0, false
	}
	return h[0].due, true
}

func (h timerHeap) top() (*elConn, bool) {
	if len(h) == 0 {
		return nil, false
	}
	return h[0], true
}

func (h *timerHeap) push(c *elConn, due int64) {
	c.due = due
	c.hidx = int32(len(*h))
	*h = append(*h, c)
	h.up(int(c.hidx))
}

// fix sets c's key to due and restores the heap order.
func (h timerHeap) fix(c *elConn, due int64) {
	c.due = due
	if !h.down(int(c.hidx)) {
		h.up(int(c.hidx))
	}
}

func (h *timerHeap) remove(c *elConn) {
	old := *h
	i, last := int(c.hidx), len(old)-1
	if i != last {
		h.swap(i, last)
	}
	old[last] = nil
	*h = old[:last]
	c.hidx = -1
	if i != last && !h.down(i) {
		h.up(i)
	}
}

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx = int32(i)
	h[j].hidx = int32(j)
}

func (h timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p].due <= h[i].due {
			return
		}
		h.swap(i, p)
		i = p
	}
}

// down sifts i toward the leaves and reports whether it moved.
func (h timerHeap) down(i int) bool {
	start := i
	for {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if r := c + 1; r < len(h) && h[r].due < h[c].due {
			c = r
		}
		if h[i].due <= h[c].due {
			break
		}
		h.swap(i, c)
		i = c
	}
	return i != start
}
