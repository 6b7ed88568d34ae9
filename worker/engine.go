package worker

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/shared/handoff"
)

// EventLoop is the worker's engine: one event loop per GOMAXPROCS, each an
// epoll instance driven by one goroutine that owns its connections; all of
// them accept on every listener (EPOLLEXCLUSIVE wakes one per connection). An
// idle connection is a small struct indexed by its descriptor: reads go to
// a buffer shared by the loop, and a connection holds a buffer of its own
// only while a question is partly received or a write is blocked. Deadlines
// live in a heap per loop instead of a timer per connection.
//
// Listeners come and go while it runs (Listen, Unlisten): the supervisor
// lends a worker the socket of a slot whose own worker is down, and takes
// it back later.
//
// Every descriptor a loop uses is closed by that loop's goroutine, so no
// descriptor number is reused while a loop may still act on it.
type EventLoop struct {
	opts   Options
	nloops int
	base   time.Time // the loops' clocks count from here, so they compare

	// state only rises: engineRunning, then engineStopped, engineClosing,
	// engineClosed. Loops read it after every wake-up.
	state atomic.Int32

	mu         sync.Mutex
	loops      []*loop              // started by the first listener
	live       int                  // loops not yet exited
	listeners  map[int]*listenerRec // by id, as Listen named them
	done       chan struct{}        // closed once stopped with no loop left and the last summary written
	loopsDone  chan struct{}        // closed once stopped with no loop left
	doneClosed bool
	failed     chan error // the first fatal listener error, for the worker's owner loop

	open atomic.Int64 // admitted connections, for MaxConnections
	// adoptNext picks the loop for the next handed-over connection;
	// guarded by mu.
	adoptNext int
	sources   *sources // nil unless MaxConnectionsPerSource is set

	// inbound counts the handover channels this worker receives on;
	// forwarding, its outgoing channels that take every connection (it
	// is going away). Both guarded by mu. While both are non-zero, a
	// stopped engine still adopts what its senders hand it and passes
	// it on: a retired receiver forwards instead of refusing, so nothing
	// strands on its senders. Its empty loops wait while inbound is (see
	// mayLeave).
	inbound, forwarding int
	// leaving: a loop of the stopped engine has decided to exit, so no
	// loop may be handed a connection any more; guarded by mu.
	leaving bool
}

// Engine states; see EventLoop.state.
const (
	engineRunning int32 = iota
	engineStopped       // listeners closed; connections still served
	engineClosing       // close connections at their next question boundary
	engineClosed        // close every connection now
)

// NewEventLoop returns an EventLoop with one loop per GOMAXPROCS; opts'
// zero fields take defaults. Its loops start with the first listener.
func NewEventLoop(opts Options) *EventLoop {
	opts.setDefaults()
	e := &EventLoop{
		opts:      opts,
		nloops:    max(1, runtime.GOMAXPROCS(0)),
		base:      time.Now(),
		listeners: make(map[int]*listenerRec),
		done:      make(chan struct{}),
		loopsDone: make(chan struct{}),
		failed:    make(chan error, 1),
	}
	if opts.MaxConnectionsPerSource > 0 {
		e.sources = &sources{limit: opts.MaxConnectionsPerSource, n: make(map[netip.Addr]int)}
	}
	return e
}

// Listen starts accepting on the listening socket f under id, until
// Unlisten(id) or the engine stops. The loops accept on duplicates of f,
// which is closed before Listen returns: the socket lives on as long as a
// descriptor of it is open, and the supervisor keeps one.
func (e *EventLoop) Listen(id int, f *os.File) error {
	defer f.Close()
	_, err := e.addListener(id, f)
	return err
}

// Unlisten stops accepting on listener id without accepting what is queued
// on it: another process serves that queue. Connections already accepted
// stay. An unknown id is ignored.
func (e *EventLoop) Unlisten(id int) {
	e.letGo(id, false)
}

// Retire stops accepting on listener id once every connection queued on it
// is accepted (and then served): its address is going away, and closing a
// listening socket's last descriptor resets what is still queued. An
// unknown id is ignored.
func (e *EventLoop) Retire(id int) {
	e.letGo(id, true)
}

func (e *EventLoop) letGo(id int, sweep bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	rec, ok := e.listeners[id]
	if !ok {
		return
	}
	delete(e.listeners, id)
	rec.dropped, rec.sweep = true, sweep
	e.wakeAllLocked()
}

// wakeAllLocked wakes every loop to look at what changed.
func (e *EventLoop) wakeAllLocked() {
	for _, l := range e.loops {
		l.wakeLocked()
	}
}

// Alive returns once every running loop has gone around since the call,
// or with ctx's error. It is the worker's answer to the supervisor's
// heartbeat: a loop stuck in a system call or in a runaway computation
// never answers, however healthy the rest of the process looks.
func (e *EventLoop) Alive(ctx context.Context) error {
	select {
	case <-e.pingLoops():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pingLoops returns a channel closed once every running loop has gone
// around since the call (see Alive).
func (e *EventLoop) pingLoops() <-chan struct{} {
	p := &ping{done: make(chan struct{})}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, l := range e.loops {
		if !l.exited {
			p.left.Add(1)
			l.pings = append(l.pings, p)
			l.wakeLocked()
		}
	}
	if p.left.Load() == 0 {
		close(p.done)
	}
	return p.done
}

// ping is one Alive call, acknowledged by each loop it was handed to.
type ping struct {
	left atomic.Int32
	done chan struct{}
}

func (p *ping) ack() {
	if p.left.Add(-1) == 0 {
		close(p.done)
	}
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
	e.wakeAllLocked()
	if e.live == 0 {
		e.closeDoneLocked()
	}
}

// closeDoneLocked ends the engine once stopped with no loop left: the
// summary goroutine, when the loops started it, writes the last summary
// and closes done (see runSummaries).
func (e *EventLoop) closeDoneLocked() {
	if e.doneClosed {
		return
	}
	e.doneClosed = true
	if e.loops != nil {
		close(e.loopsDone)
	} else {
		close(e.done)
	}
}

// errLoopFailed refuses listeners once a loop has failed (see loop.fail).
var errLoopFailed = errors.New("event loop: a loop failed; the engine must be closed")

// listenerRec is one listener, shared by the loops that each accept on a
// duplicate of its descriptor.
type listenerRec struct {
	id      int
	refs    int           // loops still holding a duplicate; guarded by EventLoop.mu
	err     error         // the first fatal accept error; guarded by EventLoop.mu
	dropped bool          // a loop failed on it, or Unlisten: every loop lets go; guarded
	sweep   bool          // with dropped, from Retire: accept what is queued first; guarded
	done    chan struct{} // closed when refs reaches zero
}

// addListener hands a duplicate of sc's descriptor to every loop, starting
// the loops on first use. A listener already known under id is kept, and
// this one ignored: the supervisor lent the same socket twice.
func (e *EventLoop) addListener(id int, sc syscall.Conn) (*listenerRec, error) {
	if e.state.Load() != engineRunning {
		return nil, ErrStopped
	}
	fds, err := dupListener(sc, e.nloops)
	if err != nil {
		return nil, err
	}
	setUserTimeout(fds[0], e.opts.WriteTimeout)
	e.mu.Lock()
	defer e.mu.Unlock()
	rec, known := e.listeners[id]
	switch {
	case e.state.Load() != engineRunning:
		err = ErrStopped
	case known:
	case e.loops == nil:
		err = e.startLoopsLocked()
	case e.live < len(e.loops):
		err = errLoopFailed
	}
	if err != nil || known {
		closeFDs(fds)
		return rec, err
	}
	rec = &listenerRec{id: id, refs: len(fds), done: make(chan struct{})}
	e.listeners[id] = rec
	for i, l := range e.loops {
		l.pending = append(l.pending, &listenerFD{rec: rec, fd: fds[i]})
		l.wakeLocked()
	}
	return rec, nil
}

// dupListener returns n close-on-exec duplicates of sc's descriptor, which
// it makes non-blocking: the loops accept without ever blocking.
func dupListener(sc syscall.Conn, n int) ([]int, error) {
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("event loop: listener: %w", err)
	}
	fds := make([]int, 0, n)
	cerr := rc.Control(func(fd uintptr) {
		for range n {
			nfd, derr := handoff.DupCloexec(fd)
			if derr != nil {
				err = derr
				return
			}
			fds = append(fds, nfd)
		}
		// O_NONBLOCK belongs to the open file, shared with every other
		// descriptor of the socket; the supervisor's is non-blocking too.
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

// setUserTimeout bounds, on a listening socket and so on every connection
// accepted from it, how long sent data may stay unacknowledged: the write
// timeout. The loop's own write timeout only runs while a write is blocked
// in the loop; a client that stops reading can leave megabytes of answers
// in a kernel send buffer that autotuning grew, and no write ever blocks.
// TCP_USER_TIMEOUT makes the kernel cut that client too (it applies to
// zero-window probes as well). It fails harmlessly on a unix socket.
func setUserTimeout(fd int, d time.Duration) {
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d.Milliseconds()))
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
	go e.runSummaries()
	return nil
}

// releaseListener is a loop giving up its duplicate of rec's descriptor,
// because of err when it is not nil.
func (e *EventLoop) releaseListener(rec *listenerRec, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil && rec.err == nil {
		rec.err = err
		rec.dropped = true
		if e.listeners[rec.id] == rec {
			delete(e.listeners, rec.id)
		}
		select {
		case e.failed <- fmt.Errorf("listener %d: %w", rec.id, err):
		default:
		}
		for _, l := range e.loops {
			l.wakeLocked()
		}
	}
	rec.refs--
	if rec.refs == 0 {
		if e.listeners[rec.id] == rec {
			delete(e.listeners, rec.id)
		}
		close(rec.done)
	}
}

// loopExited is l's last act: it gives up the listeners handed to it too
// late, answers the pings it will never see, and closes its descriptors.
func (e *EventLoop) loopExited(l *loop) {
	e.mu.Lock()
	pending, pings := l.pending, l.pings
	outs, adopted := l.pendingOuts, l.adopted
	l.pending, l.pings, l.pendingOuts, l.adopted = nil, nil, nil, nil
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
	for _, p := range pings {
		p.ack()
	}
	for _, c := range adopted {
		l.dropAdopted(c)
	}
	l.outsExited(outs)
}
