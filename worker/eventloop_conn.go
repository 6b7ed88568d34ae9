package worker

import (
	"context"
	"io"
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/shared/protocol"
)

// elConn is one connection of an event loop. An idle one holds no buffer:
// in is set only while a question is partly received (or, after a blocked
// write, while input waits to be answered), out only while a write is
// blocked.
type elConn struct {
	fd     int32
	hidx   int32 // index in the loop's timer heap
	due    int64 // the heap's key: at or before the connection's deadline
	rsince int64 // start of the idle period, or first byte of the question in `in`
	wsince int64 // when the blocked write in `out` started
	in     []byte
	out    []byte
}

// idle reports a connection at a question boundary with nothing to write.
func (c *elConn) idle() bool { return len(c.in) == 0 && c.out == nil }

// deadline is Server's: the write timeout while a write is blocked, the
// read timeout once a question has started, the idle timeout otherwise.
func (l *loop) deadline(c *elConn) int64 {
	switch {
	case c.out != nil:
		return c.wsince + l.writeTO
	case len(c.in) > 0:
		return c.rsince + l.readTO
	}
	return c.rsince + l.idle
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
		l.closeConn(c, os.ErrDeadlineExceeded)
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
	case err == unix.EAGAIN || err == unix.EINTR:
		return
	case err != nil:
		l.closeConn(c, err)
		return
	case n == 0:
		l.closeConn(c, io.EOF)
		return
	}
	l.answer(c, l.rbuf[:kept+n], kept > 0)
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
				l.stats.unknown.Add(1) // the contract counts it as an unknown question
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
			ferr = &unknownError{question: append([]byte(nil), q[:min(len(q), 81)]...)}
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
		c.in = nil
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
	return true
}

// onWritable goes on with a blocked write. Once it drains, c reads again,
// after answering the input it kept meanwhile.
func (l *loop) onWritable(c *elConn) {
	n, err := sysSend(int(c.fd), c.out)
	switch {
	case err == unix.EAGAIN || err == unix.EINTR:
		return
	case err != nil:
		l.closeConn(c, err)
		return
	case n < len(c.out):
		c.out = c.out[n:]
		return
	}
	c.out = nil
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

// closeConn closes c for reason err and logs it as Server does.
func (l *loop) closeConn(c *elConn, err error) {
	fd := int(c.fd)
	log, ctx, level := l.e.opts.Logger, context.Background(), closeLevel(err)
	remote, logged := "", log.Enabled(ctx, level)
	if logged {
		remote = peerName(fd) // while fd is open
	}
	l.timers.remove(c)
	l.conns[fd] = nil
	l.nconns--
	if len(l.closeAfter) > 0 {
		delete(l.closeAfter, c)
	}
	unix.Close(fd)
	l.stats.active.Add(-1)
	if logged {
		msg, args := closeLog(err)
		log.Log(ctx, level, msg, append([]any{"remote", remote}, args...)...)
	}
}

func stack() string { return string(debug.Stack()) }
