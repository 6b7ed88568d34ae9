package handoff

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"golang.org/x/sys/unix"
)

// Listener is what the kernel says of an inherited listening socket.
type Listener struct {
	// Addr is its local address, from getsockname.
	Addr string
	// ReusePort reports SO_REUSEPORT: more sockets can join its port.
	ReusePort bool
}

// CheckListener asks the kernel, as nginx does of what it inherits, whether
// fd is a listening TCP socket, instead of trusting whoever passed it: a
// wrong descriptor must be a clear refusal, not a crash or a silently
// wrong socket later.
func CheckListener(fd int) (Listener, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Listener{}, fmt.Errorf("not an open descriptor: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return Listener{}, errors.New("not a socket")
	}
	for _, want := range []struct {
		opt  int
		name string
		ok   func(int) bool
	}{
		{unix.SO_DOMAIN, "an IPv4 or IPv6 socket", func(v int) bool { return v == unix.AF_INET || v == unix.AF_INET6 }},
		{unix.SO_TYPE, "a stream socket", func(v int) bool { return v == unix.SOCK_STREAM }},
		// Go's net.Listen makes MPTCP listeners where the kernel has it; they
		// serve plain TCP clients as well.
		{unix.SO_PROTOCOL, "a TCP socket", func(v int) bool { return v == unix.IPPROTO_TCP || v == unix.IPPROTO_MPTCP }},
		{unix.SO_ACCEPTCONN, "listening", func(v int) bool { return v == 1 }},
	} {
		v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, want.opt)
		if err != nil {
			return Listener{}, fmt.Errorf("getsockopt: %w", err)
		}
		if !want.ok(v) {
			return Listener{}, fmt.Errorf("not %s", want.name)
		}
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return Listener{}, fmt.Errorf("getsockname: %w", err)
	}
	reuse, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT)
	if err != nil {
		return Listener{}, fmt.Errorf("getsockopt SO_REUSEPORT: %w", err)
	}
	return Listener{Addr: SockaddrString(sa), ReusePort: reuse == 1}, nil
}

// SockaddrString formats an IPv4 or IPv6 socket address as host:port.
func SockaddrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	case *unix.SockaddrInet6:
		return net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	}
	return "?"
}
