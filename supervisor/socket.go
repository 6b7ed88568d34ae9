package supervisor

import (
	"fmt"
	"net"
	"os"

	reuseport "github.com/kavu/go_reuseport"
	"golang.org/x/sys/unix"
)

// socket is a listening socket the supervisor owns, held as a raw
// close-on-exec descriptor. It is never wrapped in an *os.File or a
// net.Listener here: either would register it with this process's poller,
// which would then wake on every connection that arrives for a worker.
type socket struct {
	fd   int
	addr string
}

// bindSocket creates one SO_REUSEPORT listening socket on addr. Call it only
// from the goroutine that starts processes (see the package doc).
func bindSocket(addr string) (*socket, error) {
	ln, err := reuseport.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer ln.Close() // our duplicate keeps the socket open
	sc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		return nil, err
	}
	var fd int
	var dupErr error
	// F_DUPFD_CLOEXEC rather than File(): File() would put the shared socket
	// in blocking mode, after which Accept ignores Close (golang/go #24942).
	if err := sc.Control(func(raw uintptr) { fd, dupErr = unix.FcntlInt(raw, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, fmt.Errorf("dup listening socket: %w", dupErr)
	}
	return &socket{fd: fd, addr: ln.Addr().String()}, nil
}

// adoptSocket takes over an inherited descriptor (socket activation or a
// binary upgrade), checking it is a listening TCP socket.
func adoptSocket(f *os.File) (*socket, error) {
	defer f.Close()
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup inherited fd %d: %w", f.Fd(), err)
	}
	acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil || acc != 1 {
		unix.Close(fd)
		return nil, fmt.Errorf("inherited fd %d (%s) is not a listening socket", f.Fd(), f.Name())
	}
	addr := "?"
	if sa, err := unix.Getsockname(fd); err == nil {
		addr = sockaddrString(sa)
	}
	return &socket{fd: fd, addr: addr}, nil
}

func sockaddrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return (&net.TCPAddr{IP: a.Addr[:], Port: a.Port}).String()
	case *unix.SockaddrInet6:
		return (&net.TCPAddr{IP: a.Addr[:], Port: a.Port}).String()
	case *unix.SockaddrUnix:
		return a.Name
	}
	return "?"
}

// file returns a fresh duplicate for passing to a child, which the caller
// closes once the child has started. The socket is non-blocking, so the
// *os.File's Fd (called by os/exec) leaves its mode alone.
func (s *socket) file() (*os.File, error) {
	fd, err := unix.FcntlInt(uintptr(s.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup socket %s: %w", s.addr, err)
	}
	return os.NewFile(uintptr(fd), "listener "+s.addr), nil
}

// reusePort reports whether more sockets can join this one's port.
func (s *socket) reusePort() bool {
	v, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_REUSEPORT)
	return err == nil && v == 1
}

func (s *socket) close() error {
	return unix.Close(s.fd)
}
