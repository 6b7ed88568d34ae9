package loadgen

import (
	"context"
	"net"
	"time"
)

// dialer opens client connections, spreading them over source addresses
// 127.0.0.1..127.0.0.sources when sources > 1.
type dialer struct {
	server  *net.TCPAddr
	sources int
	timeout time.Duration
}

// dial opens connection number i of the whole load (all processes count
// together, so that each source address carries an equal share).
func (d dialer) dial(ctx context.Context, i int) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.timeout}
	if d.sources > 1 {
		nd.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%d.sources))}
		nd.Control = bindAddressNoPort
	}
	return nd.DialContext(ctx, "tcp", d.server.String())
}

// sourcesFor returns how many source addresses conns connections to server
// need so that none carries more than perSource.
func sourcesFor(server *net.TCPAddr, conns, perSource int) int {
	if server.IP.To4() == nil || conns <= perSource {
		return 1 // ::1 is the only IPv6 loopback address
	}
	return min((conns+perSource-1)/perSource, 254)
}
