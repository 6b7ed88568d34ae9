package worker

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"time"

	"github.com/camelot/lancelot/shared/protocol"
)

// readBufferSize holds one read; a question may need MaxQuestionBytes+1.
const readBufferSize = 4096

// maxPendingAnswers bounds the answers batched before one write, so a long
// pipelined burst with long custom answers cannot grow the buffer unbounded.
const maxPendingAnswers = 16 << 10

// conn is one client connection, served by one goroutine.
type conn struct {
	srv *Server
	nc  net.Conn

	buf      []byte    // unread question bytes, whitespace already dropped
	out      []byte    // answers not yet written
	started  time.Time // first byte of the pending question
	deadline time.Time // the read deadline last set on nc
	writeDL  time.Time // the write deadline last set on nc
}

func (c *conn) serve() {
	defer c.srv.trackConn(c, false)
	defer c.nc.Close()
	defer func() {
		if r := recover(); r != nil {
			c.srv.opts.Logger.Error("panic serving connection", "remote", c.nc.RemoteAddr(), "panic", r, "stack", string(debug.Stack()))
		}
	}()
	c.buf = make([]byte, 0, max(readBufferSize, c.srv.opts.MaxQuestionBytes+1))
	if err := c.loop(); err != nil {
		c.logClose(err)
	}
}

// errClosing ends a connection at a question boundary during shutdown.
var errClosing = errors.New("server shutting down")

// loop reads, answers and writes until the client leaves or must be cut.
func (c *conn) loop() error {
	for {
		wake := c.srv.wakeups.Load()
		if len(c.buf) == 0 && c.srv.closing.Load() {
			return errClosing
		}
		dl := c.readDeadline()
		if err := c.setReadDeadline(dl); err != nil {
			return err
		}
		if c.srv.wakeups.Load() != wake {
			continue // shutdown moved on while we set the deadline
		}
		n, err := c.nc.Read(c.buf[len(c.buf):cap(c.buf)])
		if n > 0 {
			c.buf = c.buf[:len(c.buf)+n]
			if perr := c.answer(); perr != nil {
				return perr
			}
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(dl) {
				c.deadline = time.Time{} // woken by shutdown: look again
				continue
			}
			return err
		}
	}
}

// readDeadline is the idle timeout between questions and the read timeout
// once a question has started.
func (c *conn) readDeadline() time.Time {
	o := &c.srv.opts
	if len(c.buf) > 0 {
		return c.started.Add(o.ReadTimeout)
	}
	now := time.Now()
	// Re-arming the idle timer after every answer costs more than the
	// answer; a deadline up to 1/8 early is within what users can notice.
	if !c.deadline.IsZero() && c.deadline.Sub(now) > o.IdleTimeout-o.IdleTimeout/8 {
		return c.deadline
	}
	return now.Add(o.IdleTimeout)
}

func (c *conn) setReadDeadline(dl time.Time) error {
	if dl.Equal(c.deadline) {
		return nil
	}
	c.deadline = dl
	return c.nc.SetReadDeadline(dl)
}

// answer frames every complete question in buf, answers the known ones in
// order, and writes them; it returns an error when the connection must
// close, after writing the answers owed before that point.
func (c *conn) answer() error {
	var ferr error
	off := 0
	for {
		q, n, err := protocol.Next(c.buf[off:], c.srv.opts.MaxQuestionBytes)
		off += n
		if err != nil {
			if errors.Is(err, protocol.ErrNotASCII) {
				c.srv.unknown.Add(1) // the contract counts it as an unknown question
			}
			ferr = err
			break
		}
		if q == nil {
			break
		}
		a, ok := c.srv.opts.Table.Answer(q)
		if !ok {
			c.srv.unknown.Add(1)
			ferr = &unknownError{question: q}
			break
		}
		c.srv.answered.Add(1)
		c.out = append(c.out, a...)
		c.started = time.Time{}
		if len(c.out) >= maxPendingAnswers {
			if err := c.flush(); err != nil {
				return err
			}
		}
	}
	c.buf = c.buf[:copy(c.buf, c.buf[off:])]
	if len(c.buf) > 0 && c.started.IsZero() {
		c.started = time.Now()
	}
	if err := c.flush(); err != nil {
		return err
	}
	return ferr
}

func (c *conn) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	o := &c.srv.opts
	if now := time.Now(); c.writeDL.Sub(now) < o.WriteTimeout-o.WriteTimeout/8 {
		c.writeDL = now.Add(o.WriteTimeout)
		if err := c.nc.SetWriteDeadline(c.writeDL); err != nil {
			return err
		}
	}
	_, err := c.nc.Write(c.out)
	c.out = c.out[:0]
	return err
}

// unknownError carries the question for the log line.
type unknownError struct{ question []byte }

func (e *unknownError) Error() string { return "unknown question" }

func (c *conn) logClose(err error) {
	log := c.srv.opts.Logger
	level := closeLevel(err)
	if !log.Enabled(context.Background(), level) {
		return
	}
	msg, args := closeLog(err)
	log.Log(context.Background(), level, msg, append([]any{"remote", c.nc.RemoteAddr().String()}, args...)...)
}

// closeLevel is closeLog's level, cheap enough for every close.
func closeLevel(err error) slog.Level {
	if _, ok := err.(*unknownError); ok || err == protocol.ErrTooLong || err == protocol.ErrNotASCII {
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// closeLog is the log line for a connection closed by err, shared by both
// engines: its message and attributes but the remote address, which the
// caller puts first.
func closeLog(err error) (string, []any) {
	var ue *unknownError
	switch {
	case errors.As(err, &ue):
		return "closing connection: unknown question", []any{"question", truncate(ue.question, 80)}
	case errors.Is(err, protocol.ErrTooLong), errors.Is(err, protocol.ErrNotASCII):
		return "closing connection", []any{"reason", err}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "closing connection: timeout", nil
	case errors.Is(err, errClosing):
		return "closing connection at question boundary", nil
	}
	return "connection closed", []any{"err", err}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
