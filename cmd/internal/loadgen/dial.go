package loadgen

import (
	"context"
	"net"
	"time"
)

// MaxSources is how many source addresses 127.0.0.0/8 offers a load:
// 127.0.0.1 to 127.0.0.254, or 127.0.0.2 to 127.0.0.255.
const MaxSources = 254

// Dialer opens a load's client connections.
type Dialer struct {
	// Server is the host:port to dial.
	Server string
	// Sources are the source addresses the connections take in turn.
	Sources Sources
	// Timeout bounds each connect.
	Timeout time.Duration
	// SockBuf sets SO_SNDBUF and SO_RCVBUF, to bound the kernel memory a
	// connection takes (0: the kernel's default).
	SockBuf int
}

// Dial opens connection number i of the whole load: all processes count
// together, so that each source address carries an equal share.
func (d Dialer) Dial(ctx context.Context, i int) (net.Conn, error) {
	ip := d.Sources.IP(i)
	nd := net.Dialer{Timeout: d.Timeout, Control: socketControl(ip != nil, d.SockBuf)}
	if ip != nil {
		nd.LocalAddr = &net.TCPAddr{IP: ip}
	}
	return nd.DialContext(ctx, "tcp", d.Server)
}

// Sources is a range of IPv4 loopback source addresses, 127.0.0.First to
// 127.0.0.(First+N-1). The zero value leaves the choice to the kernel.
type Sources struct {
	First, N int
}

// IP is the source address of connection i (nil for the zero Sources):
// connections take the range in turn.
func (s Sources) IP(i int) net.IP {
	if s.First == 0 {
		return nil
	}
	return net.IPv4(127, 0, 0, byte(s.First+i%max(s.N, 1)))
}

// SourcesFor returns how many source addresses conns connections need so
// that none carries more than perSource: at least 1, at most MaxSources.
func SourcesFor(conns, perSource int) int {
	return min(max((conns+perSource-1)/perSource, 1), MaxSources)
}

// sourcesFor is SourcesFor for a load on server: ::1 is the only IPv6
// loopback address.
func sourcesFor(server *net.TCPAddr, conns, perSource int) int {
	if server.IP.To4() == nil {
		return 1
	}
	return SourcesFor(conns, perSource)
}

// loadSources are a load's sources: 127.0.0.1 onwards when it needs more
// than one, else whatever the kernel picks (IPv6 included).
func loadSources(n int) Sources {
	if n <= 1 {
		return Sources{}
	}
	return Sources{First: 1, N: n}
}
