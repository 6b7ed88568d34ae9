package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/shared/control"
)

// EventLoop is the epoll engine: one event loop per GOMAXPROCS, each an
// epoll instance driven by one goroutine that owns its connections; all of
// them accept on every listener (EPOLLEXCLUSIVE wakes one per connection). An
// idle connection is a small struct indexed by its descriptor: reads go to
// a buffer shared by the loop, and a connection holds a buffer of its own
// only while a question is partly received or a write is blocked. Deadlines
// live in a heap per loop instead of a timer per connection.
//
// Its behaviour is Server's: the same framing (protocol.Next), deadlines,
// answer batching, shutdown at a question boundary and counters.
//
// Every descriptor a loop uses is closed by that loop's goroutine, so no
// descriptor number is reused while a loop may still act on it.
type EventLoop struct {
	opts   Options
	nloops int

	// state only rises: engineRunning, then engineStopped, engineClosing,
	// engineClosed. Loops read it after every wake-up.
	state atomic.Int32

	mu         sync.Mutex
	loops      []*loop       // started by the first Serve
	live       int           // loops not yet exited
	done       chan struct{} // closed once stopped with no loop left
	doneClosed bool
}

// Engine states; see EventLoop.state.
const (
	engineRunning int32 = iota
	engineStopped       // listeners closed; connections still served
	engineClosing       // close connections at their next question boundary
	engineClosed        // close every connection now
)

// NewEventLoop returns an EventLoop with one loop per GOMAXPROCS; opts'
// zero fields take defaults. Its loops start with the first Serve.
func NewEventLoop(opts Options) *EventLoop {
	opts.setDefaults()
	return &EventLoop{
		opts:   opts,
		nloops: max(1, runtime.GOMAXPROCS(0)),
		done:   make(chan struct{}),
	}
}

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

// Serve accepts connections on ln until Shutdown or Close. It always
// returns a non-nil error and closes ln; after Shutdown or Close the error
// is ErrServerClosed.
//
// The loops accept on duplicates of ln's descriptor, one each, and ln
// itself is closed at once (a unix listener only at the end). The socket
// lives on as long as a descriptor of it is open: the loops' duplicates
// here, the supervisor's in a worker, whose socket outlives the worker.
func (e *EventLoop) Serve(ln net.Listener) error {
	defer ln.Close()
	rec, err := e.addListener(ln)
	if err != nil {
		return err
	}
	if _, ok := ln.(*net.UnixListener); !ok {
		// ln's descriptor sits in the runtime's own poller, which every
		// new connection would wake up for nothing. A unix listener
		// stays open until the end: closing it unlinks its path.
		ln.Close()
	}
	<-rec.done
	if rec.err != nil {
		return rec.err
	}
	return ErrServerClosed
}

// Shutdown stops accepting, keeps serving open connections until they close
// or ctx is done, then closes each at its next question boundary and waits
// for them. It returns ctx.Err() when connections had to be closed.
func (e *EventLoop) Shutdown(ctx context.Context) error {
	e.raise(engineStopped)
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
	}
	e.raise(engineClosing)
	<-e.done
	return ctx.Err()
}

// Close stops accepting and closes every connection at once.
func (e *EventLoop) Close() error {
	e.raise(engineClosed)
	<-e.done
	return nil
}

// raise moves the engine to state s, if that is a step forward, and wakes
// every loop to act on it.
func (e *EventLoop) raise(s int32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state.Load() >= s {
		return
	}
	e.state.Store(s)
	for _, l := range e.loops {
		l.wakeLocked()
	}
	if e.live == 0 {
		e.closeDoneLocked()
	}
}

func (e *EventLoop) closeDoneLocked() {
	if !e.doneClosed {
		e.doneClosed = true
		close(e.done)
	}
}

// errLoopFailed refuses listeners once a loop has failed (see loop.fail).
var errLoopFailed = errors.New("event loop: a loop failed; the engine must be closed")

// listenerRec is one Serve call's listener, shared by the loops that each
// accept on a duplicate of its descriptor.
type listenerRec struct {
	refs   int           // loops still holding a duplicate; guarded by EventLoop.mu
	err    error         // the first fatal accept error; guarded by EventLoop.mu
	failed bool          // a loop hit a fatal error: the others drop it too
	done   chan struct{} // closed when refs reaches zero
}

// addListener hands a duplicate of ln's descriptor to every loop, starting
// the loops on first use.
func (e *EventLoop) addListener(ln net.Listener) (*listenerRec, error) {
	if e.state.Load() != engineRunning {
		return nil, ErrServerClosed
	}
	fds, err := dupListener(ln, e.nloops)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.state.Load() != engineRunning:
		err = ErrServerClosed
	case e.loops == nil:
		err = e.startLoopsLocked()
	case e.live < len(e.loops):
		err = errLoopFailed
	}
	if err != nil {
		closeFDs(fds)
		return nil, err
	}
	rec := &listenerRec{refs: len(fds), done: make(chan struct{})}
	for i, l := range e.loops {
		l.pending = append(l.pending, &listenerFD{rec: rec, fd: fds[i]})
		l.wakeLocked()
	}
	return rec, nil
}

// dupListener returns n close-on-exec duplicates of ln's descriptor.
func dupListener(ln net.Listener, n int) ([]int, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("event loop: %T has no file descriptor", ln)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("event loop: listener: %w", err)
	}
	fds := make([]int, 0, n)
	cerr := rc.Control(func(fd uintptr) {
		for range n {
			nfd, derr := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
			if derr != nil {
				err = derr
				return
			}
			fds = append(fds, nfd)
		}
		// O_NONBLOCK belongs to the open file, shared with ln's own
		// descriptor, which the net package made non-blocking already.
		err = unix.SetNonblock(int(fd), true)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		closeFDs(fds)
		return nil, fmt.Errorf("event loop: duplicate listener: %w", err)
	}
	return fds, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// startLoopsLocked creates and starts the loops.
func (e *EventLoop) startLoopsLocked() error {
	loops := make([]*loop, 0, e.nloops)
	for range e.nloops {
		l, err := newLoop(e)
		if err != nil {
			for _, l := range loops {
				l.closeFDs()
			}
			return err
		}
		loops = append(loops, l)
	}
	e.loops = loops
	e.live = len(loops)
	for _, l := range loops {
		go l.run()
	}
	return nil
}

// releaseListener is a loop giving up its duplicate of rec's descriptor,
// because of err when it is not nil.
func (e *EventLoop) releaseListener(rec *listenerRec, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil && rec.err == nil {
		rec.err = err
		rec.failed = true
		for _, l := range e.loops {
			l.wakeLocked()
		}
	}
	rec.refs--
	if rec.refs == 0 {
		close(rec.done)
	}
}

// loopExited is l's last act: it gives up the listeners handed to it too
// late and closes its own descriptors.
func (e *EventLoop) loopExited(l *loop) {
	e.mu.Lock()
	pending := l.pending
	l.pending = nil
	l.exited = true
	l.closeFDs()
	e.live--
	if e.live == 0 && e.state.Load() != engineRunning {
		e.closeDoneLocked()
	}
	e.mu.Unlock()
	for _, lf := range pending {
		unix.Close(lf.fd)
		e.releaseListener(lf.rec, nil)
	}
}
