package worker

import (
	"sync/atomic"

	"github.com/camelot/lancelot/shared/control"
)

// Stats returns the engine's counters, summed over its loops.
func (e *EventLoop) Stats() control.Stats {
	e.mu.Lock()
	loops := e.loops
	e.mu.Unlock()
	var s control.Stats
	for _, l := range loops {
		s = s.Add(l.stats.load())
	}
	return s
}

// loopStats are one loop's counters; padded so that loops on different
// CPUs do not share a cache line.
type loopStats struct {
	_                           [64]byte
	answered, unknown, accepted atomic.Uint64
	active                      atomic.Int64
	closed                      [numReasons]atomic.Uint64
	proxy                       [7]atomic.Uint64
	// handed counts connections handed over, by reason (handoverReasons);
	// handFailed those lost in a failed handover, handRefused those a
	// receiver refused; adopted those received.
	handed                           [len(handoverReasons)]atomic.Uint64
	handFailed, handRefused, adopted atomic.Uint64
	// example is a client error since the last summary.
	example atomic.Pointer[closeExample]
	_       [64]byte
}

// load reads the counters, as the supervisor's stats request wants them.
func (s *loopStats) load() control.Stats {
	st := control.Stats{
		Answered: s.answered.Load(),
		Unknown:  s.unknown.Load(),
		Accepted: s.accepted.Load(),
		Active:   s.active.Load(),
	}
	for r := reasonUnknown; r < numReasons; r++ {
		if n := s.closed[r].Load(); n > 0 {
			if st.Closed == nil {
				st.Closed = make(map[string]uint64)
			}
			st.Closed[r.String()] = n
		}
	}
	st.HandoverFailures = s.handFailed.Load()
	st.HandoverRefused = s.handRefused.Load()
	for i, reason := range handoverReasons {
		if n := s.handed[i].Load(); n > 0 {
			if st.HandedOver == nil {
				st.HandedOver = make(map[string]uint64)
			}
			st.HandedOver[reason] = n
		}
	}
	for i, reason := range proxyReasons() {
		if n := s.proxy[i].Load(); n > 0 {
			if st.ProxyErrors == nil {
				st.ProxyErrors = make(map[string]uint64)
			}
			st.ProxyErrors[reason] = n
		}
	}
	return st
}
