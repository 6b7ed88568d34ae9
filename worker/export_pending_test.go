package worker

// PendingBytes is what the engine's blocked writers pin, summed over its
// loops (see pin).
func (e *EventLoop) PendingBytes() int64 {
	e.mu.Lock()
	loops := e.loops
	e.mu.Unlock()
	var n int64
	for _, l := range loops {
		n += l.pinned.Load()
	}
	return n
}
