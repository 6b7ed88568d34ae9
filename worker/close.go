package worker

import (
	"errors"
	"log/slog"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/shared/protocol"
	"github.com/camelot/lancelot/shared/proxyproto"
)

// Why the server closed a connection; a client's own close has no reason.
// Each is a value of the lancelot_connections_closed_total{reason} label.
type closeReason uint8

const (
	reasonNone closeReason = iota // the client closed, or the connection broke
	reasonUnknown
	reasonOversize
	reasonNonASCII
	reasonReadTimeout
	reasonIdleTimeout
	reasonWriteTimeout
	reasonShed  // closed to make room: silent under overload, or at the cap
	reasonLimit // refused at the cap, or over the per-source cap
	reasonProxy // a PROXY header missing, malformed or not trusted
	// reasonWriteBudget: its loop's blocked writers held more than their
	// share of Options.MaxPendingBytes, this one the most (see pin).
	reasonWriteBudget
	numReasons
)

func (r closeReason) String() string {
	switch r {
	case reasonUnknown:
		return "unknown"
	case reasonOversize:
		return "oversize"
	case reasonNonASCII:
		return "non_ascii"
	case reasonReadTimeout:
		return "read_timeout"
	case reasonIdleTimeout:
		return "idle_timeout"
	case reasonWriteTimeout:
		return "write_timeout"
	case reasonShed:
		return "shed"
	case reasonLimit:
		return "limit"
	case reasonProxy:
		return "proxy"
	case reasonWriteBudget:
		return "write_budget"
	}
	return ""
}

// Errors a connection is closed with, beyond the protocol's.
var (
	errClosing      = errors.New("server shutting down")
	errReadTimeout  = errors.New("read timeout")
	errIdleTimeout  = errors.New("idle timeout")
	errWriteTimeout = errors.New("write timeout")
	errShed         = errors.New("shed to make room")
	errLimit        = errors.New("over the connection limit")
)

// unknownError carries the question for the log line.
type unknownError struct{ question string }

func (e *unknownError) Error() string { return "unknown question" }

// proxyError is a refused PROXY header; its reason labels
// lancelot_proxy_header_errors_total.
type proxyError struct{ reason string }

func (e *proxyError) Error() string { return "PROXY header refused: " + e.reason }

// reasonOf classifies a close.
func reasonOf(err error) closeReason {
	switch err {
	case protocol.ErrTooLong:
		return reasonOversize
	case protocol.ErrNotASCII:
		return reasonNonASCII
	case errReadTimeout:
		return reasonReadTimeout
	case errIdleTimeout:
		return reasonIdleTimeout
	case errWriteTimeout:
		return reasonWriteTimeout
	case errShed:
		return reasonShed
	case errLimit:
		return reasonLimit
	case errWriteBudget:
		return reasonWriteBudget
	case unix.ETIMEDOUT: // the kernel's TCP_USER_TIMEOUT: answers not taken
		return reasonWriteTimeout
	}
	switch err.(type) {
	case *unknownError:
		return reasonUnknown
	case *proxyError:
		return reasonProxy
	}
	return reasonNone
}

// proxyReasons are the PROXY header errors, in the order loopStats counts
// them.
func proxyReasons() [7]string {
	return [7]string{proxyproto.ReasonMissing, proxyproto.ReasonMalformed, proxyproto.ReasonTooLong,
		proxyproto.ReasonUnsupported, proxyproto.ReasonVersion, proxyproto.ReasonUntrusted, proxyproto.ReasonTimeout}
}

func proxyReasonIndex(reason string) int {
	for i, r := range proxyReasons() {
		if r == reason {
			return i
		}
	}
	return 0
}

// closeExample is one client error, for the summary line.
type closeExample struct {
	reason closeReason
	client string
	peer   string
	detail string
}

// closeConn closes c for err: counts it, keeps an example of a client
// error for the summary, logs it at debug level, and lets go of what c
// held.
func (l *loop) closeConn(c *elConn, err error) {
	fd := int(c.fd)
	reason := reasonOf(err)
	if reason != reasonNone {
		l.stats.closed[reason].Add(1)
		if pe, ok := err.(*proxyError); ok {
			l.stats.proxy[proxyReasonIndex(pe.reason)].Add(1)
		}
	}
	wantExample := reason != reasonNone && l.stats.example.Load() == nil
	if l.debug || wantExample {
		// While fd is open: the peer's address is gone after the close.
		ex := &closeExample{reason: reason, peer: peerName(fd), detail: closeDetail(err, c)}
		ex.client = ex.peer
		if c.info != nil && c.info.client.IsValid() {
			ex.client = c.info.client.String()
		}
		if wantExample {
			l.stats.example.CompareAndSwap(nil, ex)
		}
		if l.debug {
			l.logClose(ex, err)
		}
	}
	if reason == reasonWriteTimeout || reason == reasonWriteBudget {
		// The client reads nothing: a plain close would leave the answers
		// it never took queued in the kernel, an orphan socket probing a
		// closed window for minutes, and the client stuck behind it. A
		// reset cuts it at once and frees that memory.
		unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
	admitted := l.forget(c)
	unix.Close(fd)
	if admitted {
		l.stats.active.Add(-1)
		l.e.open.Add(-1)
	}
}

// detailBytes is how much of a client's input a log line shows.
const detailBytes = 40

// closeDetail is what a log line shows of the client's bytes.
func closeDetail(err error, c *elConn) string {
	if ue, ok := err.(*unknownError); ok {
		return ue.question
	}
	if len(c.in) > 0 {
		return escape(c.in, detailBytes)
	}
	return ""
}

// escape writes b's first n bytes with Go's escapes (\x00, \n), so a log
// line stays one readable line whatever a client sent; the log handler
// adds the quotes.
func escape(b []byte, n int) string {
	more := ""
	if len(b) > n {
		b, more = b[:n], "..."
	}
	q := strconv.Quote(string(b))
	return q[1:len(q)-1] + more
}

func (l *loop) logClose(ex *closeExample, err error) {
	args := []any{"client", ex.client, "peer", ex.peer}
	msg := "connection closed"
	switch {
	case ex.reason != reasonNone:
		msg = "closing connection: " + ex.reason.String()
		if ex.detail != "" {
			args = append(args, "input", ex.detail)
		}
	case errors.Is(err, errClosing):
		msg = "closing connection at question boundary"
	default:
		args = append(args, "err", err)
	}
	l.e.opts.Logger.Debug(msg, args...)
}

// summarize writes one line of the client errors since the last one, with
// an example, and nothing when there were none: at the default level this
// is all a flood of bad clients costs the log.
func (e *EventLoop) summarize(last *[numReasons]uint64, interval time.Duration) {
	e.mu.Lock()
	loops := e.loops
	e.mu.Unlock()
	var now [numReasons]uint64
	var ex *closeExample
	for _, l := range loops {
		for r := range numReasons {
			now[r] += l.stats.closed[r].Load()
		}
		if x := l.stats.example.Swap(nil); x != nil && ex == nil {
			ex = x
		}
	}
	var args []any
	var total uint64
	for r := reasonUnknown; r < numReasons; r++ {
		if d := now[r] - last[r]; d > 0 {
			args = append(args, r.String(), d)
			total += d
		}
	}
	*last = now
	if total == 0 {
		return
	}
	args = append([]any{"interval", interval, "total", total}, args...)
	if ex != nil {
		args = append(args, slog.Group("example", "reason", ex.reason.String(), "client", ex.client, "peer", ex.peer, "input", ex.detail))
	}
	e.opts.Logger.Info("connections closed by the server", args...)
}

// runSummaries summarizes every interval until the loops are done, then
// once more, and ends the engine (closes done).
func (e *EventLoop) runSummaries() {
	defer close(e.done)
	var last [numReasons]uint64
	t := time.NewTicker(e.opts.SummaryInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			e.summarize(&last, e.opts.SummaryInterval)
		case <-e.loopsDone:
			e.summarize(&last, e.opts.SummaryInterval)
			return
		}
	}
}

// peerName is the connection's remote address as net.Conn.RemoteAddr
// prints it, for log lines.
func peerName(fd int) string {
	if ap, ok := peerAddr(fd); ok {
		return ap.String()
	}
	if sa, err := unix.Getpeername(fd); err == nil {
		if u, ok := sa.(*unix.SockaddrUnix); ok {
			return u.Name
		}
	}
	return "?"
}
