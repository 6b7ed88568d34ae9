package worker

import "errors"

// The memory that blocked writers pin. A connection whose write blocks
// keeps its unwritten answers (c.out, at most maxPendingAnswers plus one
// answer) and the input it read but has not answered yet (c.in, at most one
// read); it is not read again until the client takes its answers, so a
// client that pipelines and never reads pins about 80 KiB until the write
// timeout, and never more. What bounds the total is a budget per worker
// (Options.MaxPendingBytes), shared equally by its loops: a loop over its
// share closes the connection pinning the most, with a reset (its client
// reads nothing), counted under reason write_budget. A client that reads
// its answers pins little and never long, so it is not the one closed.

// DefaultMaxPendingBytes is Options.MaxPendingBytes' default: about 800
// connections blocked at once with the most a connection can pin, far
// more than clients that read their answers ever leave blocked.
const DefaultMaxPendingBytes = 64 << 20

// minLoopPending is the least a loop's share of the budget can be: room
// for a few connections at their most, so that a small budget spread over
// many loops still lets a slow reader block at all.
const minLoopPending = 256 << 10

// errWriteBudget closes the connection pinning the most when its loop's
// blocked writers hold more than its share of MaxPendingBytes.
var errWriteBudget = errors.New("over the worker's budget for unwritten answers")

// loopPendingBudget is one loop's share of the worker's budget.
func loopPendingBudget(total, loops int) int64 {
	return max(int64(total)/int64(max(1, loops)), minLoopPending)
}

// pin records what c holds while its write is blocked (nothing once it
// is not), then, if the loop is over its budget, closes the connections
// pinning the most until it is not. It reports whether c is still open.
func (l *loop) pin(c *elConn) bool {
	var n int64
	if c.out != nil {
		n = int64(cap(c.out) + cap(c.in))
	}
	l.setPinned(c, n)
	for l.pinned.Load() > l.maxPinned {
		v := l.mostPinned()
		l.closeConn(v, errWriteBudget)
		if v == c {
			return false
		}
	}
	return true
}

// setPinned sets c's share of the loop's pinned bytes to n.
func (l *loop) setPinned(c *elConn, n int64) {
	if n == c.pinned {
		return
	}
	l.pinned.Add(n - c.pinned)
	c.pinned = n
	if n == 0 {
		delete(l.blocked, c)
	} else {
		l.blocked[c] = struct{}{}
	}
}

// mostPinned is the blocked connection that pins the most. It is called
// only over the budget, so it scans at most the connections that fill it.
func (l *loop) mostPinned() *elConn {
	var most *elConn
	for c := range l.blocked {
		if most == nil || c.pinned > most.pinned {
			most = c
		}
	}
	return most
}
