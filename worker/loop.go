package worker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/shared/protocol"
)

// Sizes of a loop's shared buffers and batches.
const (
	// loopReadSize is one read. A connection whose write blocks keeps at
	// most this much unanswered input, so it also bounds that memory.
	loopReadSize = 64 << 10
	loopEvents   = 256
	// acceptBatch bounds the accepts per wake-up, so a flood of new
	// connections cannot starve the served ones.
	acceptBatch = 64
	// yieldEvery is well under the runtime's 10ms forced preemption.
	yieldEvery = 2 * time.Millisecond
)

// Tags in the upper half of epoll_data (EpollEvent.Pad), next to the fd.
const (
	tagConn int32 = iota
	tagListener
	tagWake
)

// loop is one epoll instance and the goroutine that owns it: its
// connections, listener duplicates and timers are touched by that goroutine
// only. Fields marked "guarded" are shared with EventLoop under its mu.
type loop struct {
	e      *EventLoop
	epfd   int
	wakefd int // eventfd: written to wake the loop up

	table   *protocol.Table
	maxQ    int
	idle    int64 // Options' timeouts in nanoseconds
	readTO  int64
	writeTO int64

	seen    int32 // the engine state this loop has acted on
	base    time.Time
	now     int64 // nanoseconds since base, read after each epoll_wait
	yielded int64 // when the loop last called runtime.Gosched
	events  []unix.EpollEvent
	rbuf    []byte // every read lands here, after the conn's kept input
	wbuf    []byte // answers of one read, written at once

	conns      []*elConn // indexed by descriptor
	nconns     int
	timers     timerHeap
	lns        []*listenerFD
	resumeAt   int64 // earliest time a paused listener resumes; 0 if none
	closeAfter map[*elConn]error
	fresh      freshList // connections that have not sent a byte, oldest first
	// oldestFresh and shedRequests are shared with the other loops: when
	// this loop's oldest fresh connection was accepted, and how many of
	// them others asked it to shed (see shedOldestFresh).
	oldestFresh  atomic.Int64
	shedRequests atomic.Int32
	lastShed     int64 // when shedIdle last looked
	closingAt    int64 // when the engine began closing idle connections
	// sweepAt and sweepUntil pace the sweeps that ran out of descriptors
	// (see retrySweeps); sweepUntil is 0 when none is pending.
	sweepAt, sweepUntil int64
	closeSpread         int64
	debug               bool // every close is logged

	// blocked are the connections whose write is blocked, pinned what
	// they hold, and maxPinned the loop's share of the worker's budget
	// for it (see pin).
	blocked   map[*elConn]struct{}
	pinned    atomic.Int64
	maxPinned int64

	stats loopStats

	// outs are the channels the loop hands its connections into, handAt
	// when it looks for connections to send next (0: not until an event).
	outs   []loopOut
	handAt int64

	pending     []*listenerFD // guarded: handed over by Listen
	pendingOuts []*outgoing   // guarded: handed over by HandOver
	adopted     []*elConn     // guarded: handed over by Adopt
	pings       []*ping       // guarded: Alive calls to acknowledge
	exited      bool          // guarded: the loop's descriptors are closed
}

// listenerFD is a loop's duplicate of a listener's descriptor.
type listenerFD struct {
	rec      *listenerRec
	fd       int
	paused   bool // out of the epoll set after a resource error
	resumeAt int64
	backoff  time.Duration
}

func newLoop(e *EventLoop) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("event loop: epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("event loop: eventfd: %w", err)
	}
	o := &e.opts
	l := &loop{
		e: e, epfd: epfd, wakefd: wakefd,
		table: o.Table, maxQ: o.MaxQuestionBytes,
		idle: int64(o.IdleTimeout), readTO: int64(o.ReadTimeout), writeTO: int64(o.WriteTimeout),
		base:        e.base,
		events:      make([]unix.EpollEvent, loopEvents),
		rbuf:        make([]byte, o.MaxQuestionBytes+1+loopReadSize),
		wbuf:        make([]byte, 0, maxPendingAnswers+1024),
		closeAfter:  make(map[*elConn]error),
		blocked:     make(map[*elConn]struct{}),
		maxPinned:   loopPendingBudget(o.MaxPendingBytes, e.nloops),
		closeSpread: int64(o.CloseSpread),
		debug:       o.Logger.Enabled(context.Background(), slog.LevelDebug),
	}
	if err := l.ctl(unix.EPOLL_CTL_ADD, wakefd, unix.EPOLLIN, tagWake); err != nil {
		l.closeFDs()
		return nil, fmt.Errorf("event loop: epoll_ctl: %w", err)
	}
	return l, nil
}

func (l *loop) closeFDs() {
	unix.Close(l.wakefd)
	unix.Close(l.epfd)
}

// wakeLocked makes the loop's epoll_wait return; EventLoop.mu is held, so
// the eventfd is still open.
func (l *loop) wakeLocked() {
	if l.exited {
		return
	}
	one := [8]byte{1}
	unix.Write(l.wakefd, one[:])
}

func (l *loop) ctl(op, fd int, events uint32, tag int32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd), Pad: tag}
	return unix.EpollCtl(l.epfd, op, fd, &ev)
}

func (l *loop) clock() int64 { return int64(time.Since(l.base)) }

// run is the loop: wait, handle the events, fire due timers, follow the
// engine's state; until the engine is stopped and no connection is left.
func (l *loop) run() {
	defer l.e.loopExited(l)
	for {
		n, err := unix.EpollWait(l.epfd, l.events, l.waitMillis())
		if err != nil && err != unix.EINTR {
			l.fail(fmt.Errorf("event loop: epoll_wait: %w", err))
			return
		}
		l.now = l.clock()
		if l.now-l.yielded > int64(yieldEvery) {
			// A goroutine that never reschedules looks stuck to the
			// runtime: after 10ms it is preempted by a signal, and the
			// runtime's monitor thread goes back to waking up every
			// 20µs. Yielding now and then costs far less.
			l.yielded = l.now
			runtime.Gosched()
		}
		l.dispatch(l.events[:max(n, 0)])
		l.expire()
		l.shedIdle()
		l.retrySweeps()
		l.handOver()
		if s := l.e.state.Load(); s != l.seen {
			l.enter(s)
		}
		if l.seen >= engineStopped && l.nconns == 0 && len(l.lns) == 0 && l.e.mayLeave(l) {
			return
		}
	}
}

// waitMillis is epoll_wait's timeout: until the next timer, rounded up.
func (l *loop) waitMillis() int {
	next := l.resumeAt
	if t, ok := l.timers.next(); ok && (next == 0 || t < next) {
		next = t
	}
	if l.sweepUntil != 0 && (next == 0 || l.sweepAt < next) {
		next = l.sweepAt
	}
	if l.handAt != 0 && (next == 0 || l.handAt < next) {
		next = l.handAt
	}
	if l.e.overloaded() {
		// shedIdle must look again, though no timer is due.
		if t := l.lastShed + int64(overloadCheckEvery); next == 0 || t < next {
			next = t
		}
	}
	if next == 0 {
		return -1
	}
	d := next - l.clock()
	if d <= 0 {
		return 0
	}
	return int(min((d+int64(time.Millisecond)-1)/int64(time.Millisecond), 1<<30))
}

// dispatch handles events. A panic while serving one connection is logged
// and closes that connection only, as net/http's per-connection recover does.
func (l *loop) dispatch(evs []unix.EpollEvent) {
	for len(evs) > 0 {
		evs = l.dispatchSome(evs)
	}
}

func (l *loop) dispatchSome(evs []unix.EpollEvent) (rest []unix.EpollEvent) {
	i := 0
	defer func() {
		if r := recover(); r != nil {
			l.recovered(evs[i], r)
			rest = evs[i+1:]
		}
	}()
	for ; i < len(evs); i++ {
		l.handle(evs[i])
	}
	return nil
}

func (l *loop) handle(ev unix.EpollEvent) {
	switch ev.Pad {
	case tagConn:
		if c := l.conn(int(ev.Fd)); c != nil {
			if c.out != nil {
				l.onWritable(c)
			} else {
				l.onReadable(c)
			}
		}
	case tagListener:
		for _, lf := range l.lns {
			if lf.fd == int(ev.Fd) {
				l.accept(lf)
				break
			}
		}
	case tagWake:
		l.sync()
	}
}

func (l *loop) conn(fd int) *elConn {
	if fd < 0 || fd >= len(l.conns) {
		return nil
	}
	return l.conns[fd]
}

// letGo gives up a listener taken back (Unlisten) or retired (Retire),
// sweeping the queue of a retired one first.
func (l *loop) letGo(lf *listenerFD) {
	if !lf.rec.sweep {
		l.dropListener(lf, nil)
		return
	}
	if !l.sweep(lf) && l.sweepUntil == 0 {
		// Out of descriptors: retrySweeps goes on with it.
		l.sweepUntil = l.now + int64(sweepGiveUp)
		l.sweepAt = l.now + int64(sweepRetryEvery)
	}
}

// sync takes in what other goroutines handed over: new listeners, the
// listeners to let go of (taken back, or found broken by another loop),
// and heartbeats, which it acknowledges: reaching this point is the proof
// that the loop goes around.
func (l *loop) sync() {
	var b [8]byte
	unix.Read(l.wakefd, b[:])
	l.e.mu.Lock()
	pending, pings := l.pending, l.pings
	outs, adopted := l.pendingOuts, l.adopted
	l.pending, l.pings, l.pendingOuts, l.adopted = nil, nil, nil, nil
	var dropped, late []*listenerFD
	for _, lf := range l.lns {
		if lf.rec.dropped {
			dropped = append(dropped, lf)
		}
	}
	pending = slices.DeleteFunc(pending, func(lf *listenerFD) bool {
		if lf.rec.dropped {
			late = append(late, lf) // taken back before this loop saw it
		}
		return lf.rec.dropped
	})
	l.e.mu.Unlock()
	for _, lf := range dropped {
		l.letGo(lf)
	}
	for _, lf := range late {
		if lf.rec.sweep {
			l.lns = append(l.lns, lf)
			l.letGo(lf)
			continue
		}
		unix.Close(lf.fd)
		l.e.releaseListener(lf.rec, nil)
	}
	for _, lf := range pending {
		l.addListener(lf)
	}
	if len(adopted) > 0 && len(l.outs)+len(outs) > 0 && l.handAt == 0 {
		l.handAt = max(l.now, 1) // a forwarding worker passes them on
	}
	for _, c := range adopted {
		l.addAdopted(c)
	}
	l.takeOuts(outs)
	for _, p := range pings {
		p.ack()
	}
	l.shedRequested()
}

// enter acts on a new engine state: stop accepting, then close connections
// at a question boundary, or all of them.
func (l *loop) enter(s int32) {
	l.seen = s
	if s >= engineStopped && l.sweepUntil == 0 {
		l.sync() // listeners handed over before the stop are closed too
		l.sweepAll()
	}
	if s < engineClosing {
		return
	}
	if s == engineClosed {
		for _, c := range l.conns {
			if c != nil {
				l.closeConn(c, net.ErrClosed)
			}
		}
		return
	}
	// Closing at a question boundary: idle connections close over
	// CloseSpread from now (see deadline), so their clients do not all
	// reconnect in the same instant; the others when their question is
	// answered (see settle).
	l.closingAt = l.now
	for _, c := range l.conns {
		if c != nil && c.idle() {
			l.rearm(c)
		}
	}
}

// fail ends a loop whose epoll instance broke: its listeners fail with
// err, which stops the worker (see EventLoop.failed), and its connections
// are closed.
func (l *loop) fail(err error) {
	l.e.opts.Logger.Error("event loop failed", "err", err)
	for len(l.lns) > 0 {
		l.dropListener(l.lns[0], err)
	}
	for _, c := range l.conns {
		if c != nil {
			l.closeConn(c, err)
		}
	}
}

func (l *loop) recovered(ev unix.EpollEvent, r any) {
	l.e.opts.Logger.Error("panic in event loop", "fd", ev.Fd, "panic", r, "stack", stack())
	if c := l.conn(int(ev.Fd)); ev.Pad == tagConn && c != nil {
		l.closeConn(c, fmt.Errorf("panic: %v", r))
	}
}
