package worker

import (
	"io"
	"runtime/debug"

	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/shared/protocol"
	"github.com/camelot/lancelot/shared/proxyproto"
)

// elConn is one connection of an event loop. An idle one holds no buffer:
// in is set only while a question (or a PROXY header) is partly received,
// or, after a blocked write, while input waits to be answered; out only
// while a write is blocked.
type elConn struct {
	fd     int32
	hidx   int32 // index in the loop's timer heap; -1 when not in it
	due    int64 // the heap's key: at or before the connection's deadline
	rsince int64 // the accept, the start of the idle period, or the first byte of the question in `in`
	wsince int64 // when the blocked write in `out` started
	in     []byte
	out    []byte
	phase  connPhase
	// fresh: it has not sent a byte yet; it is then in the loop's
	// freshList, between fprev and fnext.
	fresh bool
	// stay: too big to hand over (see handover.Fits); it is served here.
	stay         bool
	fprev, fnext *elConn
	info         *connInfo // nil unless PROXY or per-source limits need it
	pinned       int64     // bytes held while a write is blocked (see pin)
}

// idle reports a connection at a question boundary with nothing to write.
func (c *elConn) idle() bool { return len(c.in) == 0 && c.out == nil }

// deadline is when c is closed unless it makes progress: the write
// timeout while a write is blocked; from the accept until the first byte,
// the read timeout (the idle timeout if shorter: a client that never spoke
// gets no more than one that did); the read timeout for a PROXY header and
// once a question has started; the idle timeout between questions. A
// shutdown that ran out of time closes idle connections over CloseSpread
// (see enter).
func (l *loop) deadline(c *elConn) int64 {
	var d int64
	switch {
	case c.out != nil:
		return c.wsince + l.writeTO
	case c.fresh && c.phase != phaseHeader:
		d = c.rsince + min(l.readTO, l.idle)
	case c.fresh || c.phase == phaseHeader || len(c.in) > 0:
		d = c.rsince + l.readTO
	default:
		d = c.rsince + l.idle
	}
	if l.seen >= engineClosing && c.idle() {
		d = min(d, l.closingAt+l.spread(c))
	}
	return d
}

// spread is c's place in the window over which a shutdown closes idle
// connections: a hash of its descriptor, so no state is needed for it.
func (l *loop) spread(c *elConn) int64 {
	return int64((uint64(uint32(c.fd)) * 0x9e3779b97f4a7c15 >> 32) % uint64(l.closeSpread))
}

// timeoutErr is why c is closed when its deadline passes.
func (l *loop) timeoutErr(c *elConn) error {
	switch {
	case c.out != nil:
		return errWriteTimeout
	case l.seen >= engineClosing && c.idle() && l.now >= l.closingAt+l.spread(c):
		return errClosing
	case c.phase == phaseHeader:
		return &proxyError{reason: proxyproto.ReasonTimeout}
	case c.fresh && l.idle < l.readTO:
		return errIdleTimeout
	case c.fresh || len(c.in) > 0:
		return errReadTimeout
	}
	return errIdleTimeout
}

// rearm moves c's timer earlier when its deadline did; a later deadline is
// found when the timer fires (see expire), so a busy connection costs the
// heap nothing per question.
func (l *loop) rearm(c *elConn) {
	if dl := l.deadline(c); dl < c.due {
		l.timers.fix(c, dl)
	}
}

// expire closes the connections past their deadline, and resumes the
// listeners whose accept backoff is over.
func (l *loop) expire() {
	for {
		c, ok := l.timers.top()
		if !ok || c.due > l.now {
			break
		}
		if dl := l.deadline(c); dl > l.now {
			l.timers.fix(c, dl)
			continue
		}
		l.closeConn(c, l.timeoutErr(c))
	}
	if l.resumeAt != 0 && l.resumeAt <= l.now {
		l.resumeListeners()
	}
}

// onReadable reads once into the shared buffer, after the input c kept,
// and answers what is complete.
func (l *loop) onReadable(c *elConn) {
	kept := copy(l.rbuf, c.in)
	n, err := sysRead(int(c.fd), l.rbuf[kept:])
	switch {
	case err != nil:
		l.ioFailed(c, err)
		return
	case n == 0:
		l.closeConn(c, io.EOF)
		return
	}
	l.freshRemove(c)
	data := l.rbuf[:kept+n]
	if c.phase != phaseQuestions {
		var ok bool
		if data, ok = l.preamble(c, data, kept > 0); !ok {
			return
		}
		kept = 0 // what the preamble passes on starts a question
	}
	l.answer(c, data, kept > 0)
}

// answer frames every complete question in data, answers the known ones in
// order with one write, and closes c when it must: after an unknown or bad
// question (once the answers owed are written), or at a question boundary
// when the engine is closing. kept says data starts with input c kept.
func (l *loop) answer(c *elConn, data []byte, kept bool) {
	w := l.wbuf[:0]
	var answered uint64
	var ferr error
	off := 0
	for {
		q, n, err := protocol.Next(data[off:], l.maxQ)
		off += n
		if err != nil {
			if err == protocol.ErrNotASCII {
				l.stats.unknown.Add(1) // counted as an unknown question too (docs/protocol.md)
			}
			ferr = err
			break
		}
		if q == nil {
			break
		}
		a, ok := l.table.Answer(q)
		if !ok {
			l.stats.unknown.Add(1)
			ferr = &unknownError{question: escape(q, 80)}
			break
		}
		w = append(w, a...)
		answered++
		if len(w) >= maxPendingAnswers && off < len(data) {
			if !l.flushEarly(c, w, answered, data[off:]) {
				return
			}
			w, answered = w[:0], 0
		}
	}
	l.wbuf = w[:0] // keep a grown buffer
	if ferr == nil {
		l.keep(c, data[off:], answered > 0 || !kept)
	} else {
		// What the log shows of a refused question (see closeDetail).
		c.in = append(c.in[:0], data[off:min(off+detailBytes, len(data))]...)
	}
	if answered > 0 {
		// Counted before the write: a client holding its answer sees it
		// counted.
		l.stats.answered.Add(answered)
		if !l.write(c, w) {
			return
		}
	}
	l.settle(c, ferr)
}

// flushEarly writes a full batch in the middle of the input. When the write
// blocks, the unanswered rest waits in c.in until it drains. It reports
// whether answering may go on.
func (l *loop) flushEarly(c *elConn, w []byte, answered uint64, rest []byte) bool {
	l.stats.answered.Add(answered)
	if !l.write(c, w) {
		return false
	}
	if c.out == nil {
		return true
	}
	c.in = append(c.in[:0], rest...)
	c.rsince = l.now
	l.wbuf = w[:0]
	l.pin(c)
	return false
}

// keep stores the start of an unfinished question in c.in, or frees c.in.
// A question starts now unless it continues the one c kept.
func (l *loop) keep(c *elConn, rest []byte, starts bool) {
	if len(rest) == 0 {
		c.in = nil
		c.rsince = l.now // idle from now
		return
	}
	c.in = append(c.in[:0], rest...)
	if starts {
		c.rsince = l.now
	}
}

// settle closes c if its input ended in an error or the engine is closing
// and c is at a question boundary; if the answers owed are still being
// written, the close waits for them.
func (l *loop) settle(c *elConn, ferr error) {
	if ferr == nil && l.seen >= engineClosing && c.idle() {
		ferr = errClosing
	}
	switch {
	case ferr == nil:
		l.rearm(c)
	case c.out != nil:
		l.closeAfter[c] = ferr
		l.rearm(c)
	default:
		l.closeConn(c, ferr)
	}
}

// write sends p, keeping in c.out what the socket does not take now; it
// reports false when c was closed.
func (l *loop) write(c *elConn, p []byte) bool {
	n, err := sysSend(int(c.fd), p)
	if err == unix.EAGAIN || err == unix.EINTR {
		n, err = 0, nil
	}
	if err != nil {
		l.closeConn(c, err)
		return false
	}
	if n == len(p) {
		return true
	}
	c.out = append(make([]byte, 0, len(p)-n), p[n:]...)
	c.wsince = l.now
	if err := l.ctl(unix.EPOLL_CTL_MOD, int(c.fd), unix.EPOLLOUT, tagConn); err != nil {
		l.closeConn(c, err)
		return false
	}
	l.rearm(c)
	return l.pin(c)
}

// ioFailed acts on a failed read or write: EAGAIN and EINTR wait for the
// next readiness event, anything else closes c.
func (l *loop) ioFailed(c *elConn, err error) {
	if err != unix.EAGAIN && err != unix.EINTR {
		l.closeConn(c, err)
	}
}

// onWritable goes on with a blocked write. Once it drains, c reads again,
// after answering the input it kept meanwhile.
func (l *loop) onWritable(c *elConn) {
	n, err := sysSend(int(c.fd), c.out)
	switch {
	case err != nil:
		l.ioFailed(c, err)
		return
	case n < len(c.out):
		c.out = c.out[n:]
		return
	}
	c.out = nil
	l.pin(c)
	if ferr, ok := l.closeAfter[c]; ok {
		l.closeConn(c, ferr)
		return
	}
	if err := l.ctl(unix.EPOLL_CTL_MOD, int(c.fd), unix.EPOLLIN, tagConn); err != nil {
		l.closeConn(c, err)
		return
	}
	if len(c.in) > 0 {
		l.answer(c, l.rbuf[:copy(l.rbuf, c.in)], true)
		return
	}
	c.rsince = l.now
	l.settle(c, nil)
}

// forget drops c from the loop's books: its timer, its slot, the fresh
// list, its source count. It reports whether c was admitted at all.
func (l *loop) forget(c *elConn) bool {
	l.releaseSource(c)
	l.setPinned(c, 0)
	if c.hidx < 0 {
		return false
	}
	l.timers.remove(c)
	l.conns[c.fd] = nil
	l.nconns--
	l.freshRemove(c)
	if len(l.closeAfter) > 0 {
		delete(l.closeAfter, c)
	}
	return true
}

func stack() string { return string(debug.Stack()) }
