package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"

	reuseport "github.com/kavu/go_reuseport"
	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/shared/handoff"
)

// socket is a listening socket the supervisor owns, held as a raw
// close-on-exec descriptor. It is never kept in an *os.File or a
// net.Listener here: either would register it with this process's poller,
// which would then wake on every connection that arrives for a worker.
type socket struct {
	id   int // its id, as workers know it (see addSocket)
	fd   int
	addr string
	// uid owns the socket. SO_REUSEPORT groups only sockets of one owner,
	// so a socket systemd created as root cannot be joined by ours.
	uid    int
	closed bool
	// retiring: its address was removed; it closes once a worker has
	// taken its queue (see retireSocket).
	retiring bool
	// activated: systemd passed it (socket activation), to this
	// supervisor or to a predecessor; its address is the socket unit's.
	activated bool
}

// errAddressInUse is a listening address another process already serves.
var errAddressInUse = errors.New("another process is already listening there (one lancelot per address: stop it first, or pick another address)")

// checkAddressFree refuses an address some other socket than ours (own,
// by inode) already listens on. Our own sockets have SO_REUSEPORT, which
// would let us join any same-user group silently; a probe with
// SO_REUSEADDR but without SO_REUSEPORT can bind wherever nothing listens
// (a port in TIME_WAIT included), and gets EADDRINUSE where something
// does: then the kernel's table says whether it is only ours (see
// strangerOn). A wildcard that binds both families (":PORT", "[::]:PORT")
// is probed as such, so an IPv4-only listener on the port counts too. Port
// 0 is never in use.
func checkAddressFree(addr string, own map[uint64]bool) error {
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return err
	}
	if tcp.Port == 0 {
		return nil
	}
	family, sa := unix.AF_INET, unix.Sockaddr(nil)
	dual := dualStack(addr, tcp)
	if ip4 := tcp.IP.To4(); !dual && (ip4 != nil || tcp.IP == nil) {
		a := &unix.SockaddrInet4{Port: tcp.Port}
		copy(a.Addr[:], ip4)
		sa = a
	} else {
		family = unix.AF_INET6
		a := &unix.SockaddrInet6{Port: tcp.Port}
		copy(a.Addr[:], tcp.IP.To16())
		sa = a
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("probe socket: %w", err)
	}
	defer unix.Close(fd)
	if family == unix.AF_INET6 {
		v6only := 1
		if dual {
			v6only = 0
		}
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fmt.Errorf("probe socket: %w", err)
	}
	if err := unix.Bind(fd, sa); errors.Is(err, unix.EADDRINUSE) && strangerOn(tcp.IP, tcp.Port, own) {
		return errAddressInUse
	}
	return nil // any other bind error shows up again, better worded, in the real bind
}

// dualStack reports whether addr binds a socket that takes IPv4 and IPv6
// clients: ":PORT" and "[::]:PORT", where the host has IPv6.
func dualStack(addr string, tcp *net.TCPAddr) bool {
	if tcp.IP != nil && !(tcp.IP.IsUnspecified() && tcp.IP.To4() == nil) {
		return false
	}
	return listenNetwork(addr) == "tcp" && hasIPv6()
}

// hasIPv6 reports whether this host can open IPv6 sockets.
func hasIPv6() bool {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// listenNetwork picks the network Go listens on for addr. An empty host or
// "::" is "tcp": Go then opens one IPv6 socket that takes IPv4 clients
// too (IPV6_V6ONLY off), or an IPv4 one on a host without IPv6, as
// net.Listen(":PORT") does. An IPv4 address, 0.0.0.0 included, stays IPv4
// only ("tcp4": with "tcp", Go would make 0.0.0.0 dual-stack as well).
func listenNetwork(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err == nil && ip != nil && ip.To4() != nil {
		return "tcp4"
	}
	return "tcp"
}

// bindSocket opens SO_REUSEPORT listening sockets on addr with
// go_reuseport (the design card's package): one, or for a wildcard on a
// host with net.ipv6.bindv6only=1, two (IPv6 and IPv4, see reuseportTarget).
//
// go_reuseport creates its socket without SOCK_CLOEXEC and keeps that
// descriptor until net.FileListener has duplicated it (close-on-exec), so
// a child forked meanwhile would inherit it: a worker or a successor would
// then hold a listening socket the supervisor cannot close, and its queue
// would outlive the address. syscall.ForkLock covers only the socket call
// itself. What makes it safe is that only the supervisor's loop (and New,
// before any other goroutine runs) creates sockets and starts processes,
// one after the other, never concurrently (see the package doc); the
// side ports are bound by main before it starts the loop.
func bindSocket(addr string) ([]*socket, error) {
	network, target, wild := reuseportTarget(addr)
	first, err := reuseportSocket(network, target)
	if err != nil {
		return nil, err
	}
	if !wild || network != "tcp6" || !v6only(first.fd) {
		return []*socket{first}, nil
	}
	// The host binds IPv6 wildcards IPv6-only (net.ipv6.bindv6only=1), and
	// go_reuseport has no hook to clear IPV6_V6ONLY before bind: IPv4
	// clients get a socket of their own beside it, on the same port.
	_, port, _ := net.SplitHostPort(first.addr)
	second, err := reuseportSocket("tcp4", net.JoinHostPort("0.0.0.0", port))
	if err != nil {
		first.close()
		return nil, fmt.Errorf("ipv4 beside ipv6-only %s: %w", first.addr, err)
	}
	return []*socket{first, second}, nil
}

// reuseportTarget is the network and address go_reuseport binds for addr,
// and whether addr is the both-families wildcard. go_reuseport binds an
// empty host with "tcp" to IPv4's 0.0.0.0 only, so ":PORT" (and
// "[::]:PORT") is bound as "tcp6" on "[::]:PORT", which takes IPv4 clients
// too where net.ipv6.bindv6only is 0 (the Linux default); a host without
// IPv6 gets "tcp4" on 0.0.0.0. An IPv4 address, 0.0.0.0 included, stays
// IPv4 only; anything else (an IPv6 address, a host name) is go_reuseport's
// to resolve.
func reuseportTarget(addr string) (network, target string, wild bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "tcp", addr, false
	}
	ip := net.ParseIP(host)
	switch {
	case ip != nil && ip.To4() != nil:
		return "tcp4", addr, false
	case host != "" && !(ip != nil && ip.IsUnspecified()):
		return "tcp", addr, false
	case hasIPv6():
		return "tcp6", net.JoinHostPort("::", port), true
	default:
		return "tcp4", net.JoinHostPort("0.0.0.0", port), true
	}
}

// reuseportSocket binds one socket with go_reuseport and keeps a raw
// close-on-exec duplicate of it. go_reuseport makes plain TCP sockets
// (IPPROTO_TCP, never MPTCP, as a socket systemd passes is not).
func reuseportSocket(network, addr string) (*socket, error) {
	ln, err := reuseport.Listen(network, addr)
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
	// A duplicate rather than File(): File() would put the shared socket
	// in blocking mode, after which Accept ignores Close (golang/go #24942).
	if err := sc.Control(func(raw uintptr) { fd, dupErr = handoff.DupCloexec(raw) }); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, fmt.Errorf("listening socket: %w", dupErr)
	}
	raiseBacklog(fd)
	return &socket{fd: fd, addr: ln.Addr().String(), uid: os.Geteuid()}, nil
}

// v6only reports whether an IPv6 socket takes IPv6 clients only, as the
// kernel set it (net.ipv6.bindv6only), read back with getsockopt.
func v6only(fd int) bool {
	v, err := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
	return err == nil && v == 1
}

// maxBacklog asks the kernel for the longest accept queue it allows: it
// caps the request at net.core.somaxconn itself. Go asks for somaxconn as
// it reads it from /proc/sys, which a unit with ProcSubset=pid hides, and
// then falls back to 128.
const maxBacklog = 1 << 16

// raiseBacklog calls listen again on a listening socket, which only
// changes its backlog.
func raiseBacklog(fd int) {
	unix.Listen(fd, maxBacklog)
}

// ListenSidePort binds one of the supervisor's own ports (metrics, agent)
// with SO_REUSEPORT, so a binary upgrade's successor can bind it while
// this supervisor still serves it: with go_reuseport, as the serving
// sockets, but for a wildcard on a host with net.ipv6.bindv6only=1. There
// go_reuseport cannot serve: it cannot clear IPV6_V6ONLY before bind, and
// a side port is one net.Listener for both families, so Go's own listener
// (which clears it) binds it instead. Called by main before the loop runs,
// so no process is started meanwhile (see bindSocket).
func ListenSidePort(addr string) (net.Listener, error) {
	network, target, wild := reuseportTarget(addr)
	ln, err := reuseport.Listen(network, target)
	if err != nil {
		return nil, err
	}
	if !wild || network != "tcp6" {
		return ln, nil
	}
	sc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		ln.Close()
		return nil, err
	}
	only := false
	sc.Control(func(fd uintptr) { only = v6only(int(fd)) })
	if !only {
		return ln, nil
	}
	ln.Close()
	lc := net.ListenConfig{Control: setReusePort}
	return lc.Listen(context.Background(), "tcp", addr)
}

// setReusePort sets SO_REUSEPORT before bind, as caddy's listeners do.
func setReusePort(_, _ string, rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}

// adoptSocket takes over an inherited descriptor (socket activation or a
// binary upgrade), checking it is a listening TCP socket. It makes the
// socket non-blocking: the workers' loops accept on it without blocking.
func adoptSocket(f *os.File) (*socket, error) {
	defer f.Close()
	fd, err := handoff.DupFile(f)
	if err != nil {
		return nil, fmt.Errorf("inherited: %w", err)
	}
	info, err := handoff.CheckListener(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inherited %s: %w", f.Name(), err)
	}
	unix.SetNonblock(fd, true)
	s := &socket{fd: fd, addr: info.Addr, uid: -1}
	// A socket's inode belongs to the user that created it.
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil {
		s.uid = int(st.Uid)
	}
	return s, nil
}

// file returns a fresh duplicate for passing to a child or a worker, which
// the caller closes once it is passed. The socket is non-blocking, so the
// *os.File's Fd (called by os/exec and the control channel) leaves its mode
// alone.
func (s *socket) file() (*os.File, error) {
	fd, err := handoff.DupCloexec(uintptr(s.fd))
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", s.addr, err)
	}
	return os.NewFile(uintptr(fd), "listener "+s.addr), nil
}

// joinable reports whether a socket of ours can join this one's port: it
// has SO_REUSEPORT and the same owner as us.
func (s *socket) joinable() bool {
	v, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_REUSEPORT)
	return err == nil && v == 1 && s.uid == os.Geteuid()
}

func (s *socket) close() {
	if !s.closed {
		s.closed = true
		if s.fd >= 0 {
			unix.Close(s.fd)
		}
	}
}

func (s *socket) String() string {
	return s.addr + " (fd " + strconv.Itoa(s.fd) + ")"
}
