package worker

// NewEventLoopN is NewEventLoop with n loops whatever GOMAXPROCS is, so
// the tests run the paths of several loops sharing a listener on any
// machine.
func NewEventLoopN(opts Options, n int) *EventLoop {
	e := NewEventLoop(opts)
	e.nloops = n
	return e
}
