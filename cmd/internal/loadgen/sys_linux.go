//go:build linux

package loadgen

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// socketControl is a net.Dialer Control that tunes a client socket before
// it connects. With a source address (noPort) it sets
// IP_BIND_ADDRESS_NO_PORT: bind() would otherwise pick the local port
// before knowing the destination, so each source address could carry only
// one ephemeral range (~28k) of connections in all; with it the port is
// chosen at connect() per (source, destination) pair. With sockbuf > 0 it
// sets both buffer sizes.
func socketControl(noPort bool, sockbuf int) func(string, string, syscall.RawConn) error {
	if !noPort && sockbuf <= 0 {
		return nil
	}
	return func(_, _ string, c syscall.RawConn) error {
		var errs []error
		err := c.Control(func(fd uintptr) {
			if noPort {
				errs = append(errs, unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1))
			}
			if sockbuf > 0 {
				errs = append(errs,
					unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, sockbuf),
					unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, sockbuf))
			}
		})
		return errors.Join(append(errs, err)...)
	}
}

// raiseFileLimit raises RLIMIT_NOFILE's soft limit to the hard one and
// returns it. (Go's runtime already does so at start; this keeps the limit
// right even when an embedding program lowered it.)
func raiseFileLimit() (int, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("setrlimit: %w", err)
		}
	}
	return int(min(lim.Cur, 1<<30)), nil
}

// openFiles counts this process's open file descriptors.
func openFiles() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 64 // a guess that errs on the safe side
	}
	return len(entries)
}

// peekClosed reports, without blocking or consuming, how an idle
// connection stands: nil while it is open and silent, io.EOF once the
// server closed it, ErrWrongAnswer if the server sent bytes, or the socket
// error. A Read with a past deadline cannot do this: Go returns the
// timeout without asking the kernel.
func peekClosed(conn net.Conn) error {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var n int
	var perr error
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, perr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		return true // never wait for readiness
	})
	return peekResult(n, errors.Join(err, perr))
}

func peekResult(n int, err error) error {
	switch {
	case errors.Is(err, unix.EAGAIN):
		return nil
	case err != nil:
		return err
	case n == 0:
		return io.EOF
	default:
		return ErrWrongAnswer
	}
}

// childAttr makes a child process die with the load generator even if
// the stdin EOF that normally stops it never comes.
func childAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
