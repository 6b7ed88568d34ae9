package worker

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/shared/proxyproto"
)

// connPhase is what a connection's next bytes must be.
type connPhase uint8

const (
	phaseQuestions connPhase = iota
	// phaseHeader: a trusted peer sends a PROXY header first.
	phaseHeader
	// phaseSignature: an untrusted peer, with the PROXY protocol on: its
	// first bytes must not be a PROXY signature.
	phaseSignature
)

// connInfo is what a connection keeps only when a feature needs it.
type connInfo struct {
	// client is the client a PROXY header named; invalid when the peer is
	// the client.
	client netip.AddrPort
	// source is the address counted against MaxConnectionsPerSource;
	// invalid when not counted.
	source netip.Addr
}

// sources counts open connections per client address, for
// MaxConnectionsPerSource, across the engine's loops.
type sources struct {
	mu    sync.Mutex
	limit int
	n     map[netip.Addr]int
}

func (s *sources) acquire(a netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[a] >= s.limit {
		return false
	}
	s.n[a]++
	return true
}

func (s *sources) release(a netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[a]--; s.n[a] <= 0 {
		delete(s.n, a)
	}
}

// freshList holds a loop's connections that have not sent a byte yet,
// oldest first: at the connection cap the oldest is shed for a newcomer,
// because a client that never spoke is the cheapest to turn away and the
// likeliest to be an attack. The loop publishes when its oldest was
// accepted (loop.oldestFresh), so the engine finds the oldest of all.
type freshList struct{ head, tail *elConn }

func (l *loop) freshPush(c *elConn) {
	f := &l.fresh
	c.fresh, c.fprev, c.fnext = true, f.tail, nil
	if f.tail != nil {
		f.tail.fnext = c
	} else {
		f.head = c
	}
	f.tail = c
	l.publishOldestFresh()
}

func (l *loop) freshRemove(c *elConn) {
	if !c.fresh {
		return
	}
	f := &l.fresh
	if c.fprev != nil {
		c.fprev.fnext = c.fnext
	} else {
		f.head = c.fnext
	}
	if c.fnext != nil {
		c.fnext.fprev = c.fprev
	} else {
		f.tail = c.fprev
	}
	c.fresh, c.fprev, c.fnext = false, nil, nil
	l.publishOldestFresh()
}

// publishOldestFresh stores when the loop's oldest fresh connection was
// accepted, plus one so that zero means none.
func (l *loop) publishOldestFresh() {
	var v int64
	if h := l.fresh.head; h != nil {
		v = h.rsince + 1
	}
	l.oldestFresh.Store(v)
}

// shedOldestFresh makes room at the cap by closing the connection silent
// longest among those of every loop that never sent a byte. The loop that
// holds it closes it (its connections are its own), so when that is
// another loop, the newcomer is admitted a moment before the victim goes.
// It reports false when no connection is fresh.
func (l *loop) shedOldestFresh() bool {
	var victim *loop
	var oldest int64
	for _, x := range l.e.loops {
		if v := x.oldestFresh.Load(); v != 0 && (victim == nil || v < oldest) {
			victim, oldest = x, v
		}
	}
	switch {
	case victim == nil:
		return false
	case victim == l:
		l.closeConn(l.fresh.head, errShed)
	default:
		victim.shedRequests.Add(1)
		l.e.mu.Lock()
		victim.wakeLocked()
		l.e.mu.Unlock()
	}
	return true
}

// shedRequested closes this loop's oldest fresh connections that other
// loops asked it to shed.
func (l *loop) shedRequested() {
	for n := l.shedRequests.Swap(0); n > 0 && l.fresh.head != nil; n-- {
		l.closeConn(l.fresh.head, errShed)
	}
}

// addConn admits an accepted connection, or turns it away, and starts
// serving it.
func (l *loop) addConn(fd int) {
	l.stats.accepted.Add(1)
	o := &l.e.opts
	if o.MaxConnections > 0 && l.e.open.Load() >= int64(o.MaxConnections) && !l.shedOldestFresh() {
		l.refuse(fd, errLimit)
		return
	}
	c := &elConn{fd: int32(fd), rsince: l.now}
	if o.Proxy != proxyproto.Off || o.MaxConnectionsPerSource > 0 {
		if !l.classify(c) {
			return
		}
	}
	// As the net package does for accepted TCP connections; fails
	// harmlessly on a unix socket.
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if err := l.ctl(unix.EPOLL_CTL_ADD, fd, unix.EPOLLIN, tagConn); err != nil {
		l.e.opts.Logger.Warn("connection dropped", "err", err)
		l.releaseSource(c)
		unix.Close(fd)
		return
	}
	if fd >= len(l.conns) {
		l.conns = append(l.conns, make([]*elConn, fd+1-len(l.conns)+len(l.conns)/2)...)
	}
	l.conns[fd] = c
	l.nconns++
	l.freshPush(c)
	l.timers.push(c, l.deadline(c))
	l.stats.active.Add(1)
	l.e.open.Add(1)
}

// classify decides, from the peer's address, whether c must start with a
// PROXY header, and counts it against its source. It reports false when c
// was turned away.
func (l *loop) classify(c *elConn) bool {
	o := &l.e.opts
	peer, _ := peerAddr(int(c.fd))
	if o.Proxy != proxyproto.Off && o.ProxyAllow.Contains(peer.Addr()) {
		c.phase = phaseHeader // counted once the header names the client
		return true
	}
	if o.Proxy != proxyproto.Off {
		c.phase = phaseSignature
	}
	if !l.countSource(c, peer.Addr()) {
		l.refuse(int(c.fd), errLimit)
		return false
	}
	return true
}

// countSource counts c against source a, when sources are capped.
func (l *loop) countSource(c *elConn, a netip.Addr) bool {
	if l.e.sources == nil {
		return true
	}
	if !l.e.sources.acquire(a) {
		return false
	}
	if c.info == nil {
		c.info = &connInfo{}
	}
	c.info.source = a
	return true
}

func (l *loop) releaseSource(c *elConn) {
	if c.info != nil && c.info.source.IsValid() {
		l.e.sources.release(c.info.source)
		c.info.source = netip.Addr{}
	}
}

// refuse closes a connection that was never admitted, counting why.
func (l *loop) refuse(fd int, err error) {
	l.closeConn(&elConn{fd: int32(fd), hidx: -1}, err)
}

// Overload. Above nine tenths of MaxConnections, the idle timeouts of the
// connections quiet longest shrink, linearly down to minShrunkTimeout at
// the cap, as Envoy's overload manager does: a flood of idle connections
// makes room for real clients instead of crowding them out.
const (
	overloadCheckEvery = 100 * time.Millisecond
	minShrunkTimeout   = time.Second
)

// overloaded reports whether open connections are above nine tenths of
// the cap.
func (e *EventLoop) overloaded() bool {
	return e.opts.MaxConnections > 0 && e.open.Load() > overloadAt(e.opts.MaxConnections)
}

// overloadAt is the number of open connections above which idle timeouts
// shrink: nine tenths of the cap.
func overloadAt(maxConns int) int64 { return int64(maxConns) * 9 / 10 }

// shedIdle closes, under overload, the connections idle (or silent since
// they connected) longer than the shrunk timeouts allow.
func (l *loop) shedIdle() {
	if !l.e.overloaded() || l.now-l.lastShed < int64(overloadCheckEvery) {
		return
	}
	l.lastShed = l.now
	max := int64(l.e.opts.MaxConnections)
	high := max * 9 / 10
	open := l.e.open.Load()
	room := float64(max-min(open, max)) / float64(max-high)
	idle := shrink(l.idle, room)
	first := shrink(l.readTO, room)
	for _, c := range l.conns {
		switch {
		case c == nil || !c.idle():
		case c.fresh && l.now-c.rsince >= first,
			!c.fresh && c.phase == phaseQuestions && l.now-c.rsince >= idle:
			l.closeConn(c, errShed)
		}
	}
}

func shrink(timeout int64, room float64) int64 {
	return max(int64(minShrunkTimeout), int64(float64(timeout)*room))
}

// preamble handles what must come before the questions: the PROXY header
// of a trusted peer, or the check that an untrusted one sent none. It
// returns the bytes to frame as questions and true, or false when c is
// waiting for more bytes or was closed.
func (l *loop) preamble(c *elConn, data []byte, kept bool) ([]byte, bool) {
	mode := l.e.opts.Proxy
	if c.phase == phaseSignature {
		sig, undecided := proxyproto.HasSignature(data)
		switch {
		case sig:
			l.closeConn(c, &proxyError{reason: proxyproto.ReasonUntrusted})
			return nil, false
		case undecided:
			l.keep(c, data, !kept)
			l.rearm(c)
			return nil, false
		}
		c.phase = phaseQuestions
		return data, true
	}
	h, n, err := proxyproto.Parse(data, mode)
	switch {
	case err == proxyproto.ErrIncomplete:
		c.in = append(c.in[:0], data...) // the header's deadline runs from the accept
		return nil, false
	case err != nil:
		reason := proxyproto.ReasonMalformed
		if pe, ok := err.(*proxyproto.Error); ok {
			reason = pe.Reason
		}
		l.closeConn(c, &proxyError{reason: reason})
		return nil, false
	}
	c.phase = phaseQuestions
	source := h.Source.Addr()
	if h.Local {
		peer, _ := peerAddr(int(c.fd))
		source = peer.Addr()
	} else {
		c.info = &connInfo{client: h.Source}
	}
	if !l.countSource(c, source) {
		l.closeConn(c, errLimit)
		return nil, false
	}
	c.in = c.in[:0]
	c.rsince = l.now
	return data[n:], true
}

// peerAddr is the connection's remote address.
func peerAddr(fd int) (netip.AddrPort, bool) {
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return netip.AddrPort{}, false
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), true
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port)), true
	}
	return netip.AddrPort{}, false
}
