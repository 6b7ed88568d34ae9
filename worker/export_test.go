package worker

import (
	"fmt"
	"net"
	"syscall"
)

// NewEventLoopN is NewEventLoop with n loops whatever GOMAXPROCS is, so
// the tests run the paths of several loops sharing a listener on any
// machine.
func NewEventLoopN(opts Options, n int) *EventLoop {
	e := NewEventLoop(opts)
	e.nloops = n
	return e
}

// Serve accepts connections on ln, as Listen does a socket the supervisor
// passes, until Shutdown or Close; then, or when the engine is already
// stopped, it returns ErrStopped. It closes ln, which lets the tests use
// any net.Listener, a unix socket's included.
func (e *EventLoop) Serve(ln net.Listener) error {
	defer ln.Close()
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return fmt.Errorf("event loop: %T has no file descriptor", ln)
	}
	// ln's own descriptor names it below zero, clear of the supervisor's
	// socket ids, and unique while Serve keeps ln open.
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var id int
	rc.Control(func(fd uintptr) { id = -1 - int(fd) })
	rec, err := e.addListener(id, sc)
	if err != nil {
		return err
	}
	<-rec.done
	if rec.err != nil {
		return rec.err
	}
	return ErrStopped
}
