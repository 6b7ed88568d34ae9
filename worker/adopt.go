package worker

import (
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/shared/handover"
	"github.com/camelot/lancelot/shared/proxyproto"
)

// Receive starts serving the receiving side of a handover channel until
// its sender closes its end (see handover.Receiver.Serve), adopting what
// it hands over, and returns what Serve returns. From the call on, a
// stopped engine that forwards keeps its loops (see mayLeave).
func (e *EventLoop) Receive(r *handover.Receiver, idle time.Duration) <-chan error {
	e.mu.Lock()
	e.inbound++
	e.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		err := r.Serve(e.Adopt, idle)
		e.mu.Lock()
		e.inbound--
		e.wakeAllLocked() // an empty loop waiting for the senders may exit now
		e.mu.Unlock()
		done <- err
	}()
	return done
}

// Adopt is the receiving side of a handover (a handover.Taker): it admits
// the connections another worker hands over, within this engine's limits,
// and gives each to a loop. It owns the descriptors it takes.
func (e *EventLoop) Adopt(conns []handover.Conn) []handover.Refusal {
	verdicts := make([]handover.Refusal, len(conns))
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.adoptingLocked() {
		for i := range verdicts {
			verdicts[i] = handover.RefusedStopping
		}
		return verdicts
	}
	now := int64(time.Since(e.base))
	for i := range conns {
		c, v := e.admitHanded(&conns[i], now)
		verdicts[i] = v
		if v != handover.Taken {
			continue
		}
		l := e.loops[e.adoptNext%len(e.loops)]
		e.adoptNext++
		l.adopted = append(l.adopted, c)
		l.wakeLocked()
	}
	return verdicts
}

// adoptingLocked reports whether the engine takes handed-over
// connections: while it serves, and, stopped, while it hands every
// connection on (it forwards them), until a loop leaves.
func (e *EventLoop) adoptingLocked() bool {
	if e.loops == nil || e.live < len(e.loops) || e.leaving {
		return false
	}
	switch e.state.Load() {
	case engineRunning:
		return true
	case engineStopped:
		return e.forwarding > 0
	}
	return false
}

// mayLeave reports whether l, a loop of a stopped engine with nothing
// left to serve, may exit; once one may, the engine adopts no more. Not
// while a sender may still hand the worker connections, until its drain
// deadline: if it forwards, Adopt gives them to every loop, and a loop
// gone would strand them; if it does not forward yet, it may be told to
// any moment (the supervisor's TERM can overtake the channel it is to
// forward into), and the sender offers them again meanwhile.
func (e *EventLoop) mayLeave(l *loop) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(l.adopted) > 0 || len(l.pendingOuts) > 0 {
		return false
	}
	if e.state.Load() == engineStopped && e.inbound > 0 {
		return false
	}
	e.leaving = true
	return true
}

// admitHanded checks one handed connection against the limits, and counts
// it against them when it fits.
func (e *EventLoop) admitHanded(hc *handover.Conn, now int64) (*elConn, handover.Refusal) {
	o := &e.opts
	phase := connPhase(hc.Phase)
	if o.Proxy == proxyproto.Off {
		phase = phaseQuestions // served with this worker's configuration
	}
	if len(hc.Input) > o.MaxQuestionBytes+1 || phase > phaseSignature {
		return nil, handover.RefusedState
	}
	if o.MaxConnections > 0 && e.open.Load()+1 > overloadAt(o.MaxConnections) {
		// Past nine tenths of the cap this worker sheds idle connections
		// (see shedIdle): taking more would close the very connections a
		// handover exists to keep. The sender serves them on instead.
		return nil, handover.RefusedMaxConnections
	}
	c := &elConn{fd: int32(hc.FD), hidx: -1, phase: phase, fresh: hc.Fresh, rsince: now - int64(hc.Since)}
	if hc.Client.IsValid() {
		c.info = &connInfo{client: hc.Client}
	}
	if e.sources != nil && phase != phaseHeader {
		source := hc.Client.Addr()
		if !hc.Client.IsValid() {
			peer, _ := peerAddr(hc.FD)
			source = peer.Addr()
		}
		if !e.sources.acquire(source) {
			return nil, handover.RefusedPerSource
		}
		if c.info == nil {
			c.info = &connInfo{}
		}
		c.info.source = source
	}
	if len(hc.Input) > 0 {
		c.in = slices.Clone(hc.Input)
	}
	e.open.Add(1)
	return c, handover.Taken
}

// addAdopted starts serving a connection Adopt gave this loop. Input that
// came with it is framed at once: it holds no complete question when the
// sender kept to a question boundary, but nothing is lost if it does.
func (l *loop) addAdopted(c *elConn) {
	fd := int(c.fd)
	if err := l.ctl(unix.EPOLL_CTL_ADD, fd, unix.EPOLLIN, tagConn); err != nil {
		l.e.opts.Logger.Warn("handed-over connection dropped", "err", err)
		l.dropAdopted(c)
		return
	}
	if fd >= len(l.conns) {
		l.conns = append(l.conns, make([]*elConn, fd+1-len(l.conns)+len(l.conns)/2)...)
	}
	l.conns[fd] = c
	l.nconns++
	if c.fresh {
		l.freshPush(c)
	}
	l.timers.push(c, l.deadline(c))
	l.stats.active.Add(1)
	l.stats.adopted.Add(1)
	if c.phase == phaseQuestions && len(c.in) > 0 {
		l.answer(c, l.rbuf[:copy(l.rbuf, c.in)], true)
	}
}

// dropAdopted closes a handed-over connection that could not be served:
// counted as a failed handover.
func (l *loop) dropAdopted(c *elConn) {
	l.releaseSource(c)
	unix.Close(int(c.fd))
	l.e.open.Add(-1)
	l.stats.handFailed.Add(1)
}
