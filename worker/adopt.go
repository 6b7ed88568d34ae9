package worker

import (
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/shared/handover"
	"github.com/camelot/lancelot/shared/proxyproto"
)

// Adopt is the receiving side of a handover (a handover.Taker): it admits
// the connections another worker hands over, within this engine's limits,
// and gives each to a loop. It owns the descriptors it takes.
func (e *EventLoop) Adopt(conns []handover.Conn) []handover.Refusal {
	verdicts := make([]handover.Refusal, len(conns))
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state.Load() != engineRunning || e.loops == nil || e.live < len(e.loops) {
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
