package main

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// dialer opens attack connections from the source addresses of a share.
type dialer struct {
	server  string
	sources int
	timeout time.Duration
	sockbuf int
}

// dial opens the attack-wide connection number i.
func (d dialer) dial(ctx context.Context, i int) (net.Conn, error) {
	nd := net.Dialer{
		Timeout:   d.timeout,
		LocalAddr: &net.TCPAddr{IP: sourceIP(i, d.sources)},
		Control:   d.control,
	}
	return nd.DialContext(ctx, "tcp4", d.server)
}

// control sets IP_BIND_ADDRESS_NO_PORT: with a source address, bind()
// would otherwise choose the local port before it knows the destination,
// and each source address would carry one ephemeral range (~28k) in all.
// It also sets the buffer sizes when asked, to bound kernel memory.
func (d dialer) control(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		if serr == nil && d.sockbuf > 0 {
			serr = errors.Join(
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, d.sockbuf),
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, d.sockbuf))
		}
	})
	return errors.Join(err, serr)
}

// errWrongAnswer marks an answer that differs from the expected one.
var errWrongAnswer = errors.New("wrong answer")

// kindOf names the kind of a connection error, as the JSON reports it.
func kindOf(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, errWrongAnswer):
		return "wrong_answer"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	// EPIPE too: Linux fails a write that way only after the peer's RST.
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	// These two are this tool running out of ports or descriptors, not
	// the server misbehaving: they are named so that a run can be judged.
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no_port"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "no_fd"
	case errors.Is(err, net.ErrClosed), errors.Is(err, context.Canceled):
		return "closed"
	default:
		return "other"
	}
}

// raiseFileLimit raises RLIMIT_NOFILE's soft limit to the hard one (Go
// does it at start; this keeps it right whatever the parent did).
func raiseFileLimit() error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		return unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}
	return nil
}
