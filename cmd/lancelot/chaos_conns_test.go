package main

import (
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/lancelottest"
)

// Persistent connections of the chaos soak: clients that each keep one
// connection and ask a question on it every period. A handover moves them
// between workers; only a killed worker (or the full stop at the end) may
// close one. A client whose connection closed dials a new one, so that the
// kills variant goes on watching connections after its first kills.
const (
	chaosConns      = 16
	chaosConnPeriod = 50 * time.Millisecond
)

// soakConns is the soak's persistent clients; each records the error that
// ended it, keyed by its local port (how ss names it).
type soakConns struct {
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	asked  int
	failed map[int]error // local port -> the error that ended its connection
	ports  []int         // every connection's local port, in dial order
	addr   string
}

func startSoakConns(t *testing.T, addr string) *soakConns {
	t.Helper()
	p := &soakConns{stop: make(chan struct{}), failed: map[int]error{}, addr: addr}
	var conns []net.Conn
	for range chaosConns {
		c := lancelottest.DialConn(t, addr)
		if _, err := lancelottest.AskOn(c, lancelottest.QQuest); err != nil {
			t.Fatalf("persistent client: first question: %v", err)
		}
		conns = append(conns, c)
		p.ports = append(p.ports, c.LocalAddr().(*net.TCPAddr).Port)
	}
	for _, c := range conns {
		p.wg.Go(func() { p.ask(c) })
	}
	t.Cleanup(p.halt)
	return p
}

// ask asks on c every period until the stop, dialling a new connection
// when c fails.
func (p *soakConns) ask(c net.Conn) {
	tick := time.NewTicker(chaosConnPeriod)
	defer tick.Stop()
	for c != nil && p.serve(c, tick) {
		c = p.redial()
	}
}

// redial opens a new connection and records its port; nil if it cannot.
func (p *soakConns) redial() net.Conn {
	c, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
	if err != nil {
		return nil
	}
	p.mu.Lock()
	p.ports = append(p.ports, c.LocalAddr().(*net.TCPAddr).Port)
	p.mu.Unlock()
	return c
}

// serve asks on c until the stop (false) or an error (true).
func (p *soakConns) serve(c net.Conn, tick *time.Ticker) bool {
	defer c.Close()
	port := c.LocalAddr().(*net.TCPAddr).Port
	for {
		select {
		case <-p.stop:
			return false
		case <-tick.C:
		}
		a, err := lancelottest.AskOn(c, lancelottest.QQuest)
		if err == nil && a != lancelottest.AQuest {
			err = fmt.Errorf("answer %q", a)
		}
		p.mu.Lock()
		if err != nil {
			p.failed[port] = fmt.Errorf("%s: %w", time.Now().UTC().Format("15:04:05.000"), err)
		} else {
			p.asked++
		}
		p.mu.Unlock()
		if err != nil {
			return true
		}
	}
}

// halt stops the clients (their connections close from the client side).
func (p *soakConns) halt() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.wg.Wait()
}

// waitAsked waits until n more questions were answered.
func (p *soakConns) waitAsked(t *testing.T, n int) {
	t.Helper()
	p.mu.Lock()
	want := p.asked + n
	p.mu.Unlock()
	lancelottest.WaitFor(t, 10*time.Second, fmt.Sprintf("%d more answers on the persistent connections", n), func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.asked >= want
	})
}

// failures returns the failed connections' ports, sorted, their errors,
// and how many connections there were.
func (p *soakConns) failures() ([]int, map[int]error, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ports := make([]int, 0, len(p.failed))
	errs := make(map[int]error, len(p.failed))
	for port, err := range p.failed {
		ports = append(ports, port)
		errs[port] = err
	}
	slices.Sort(ports)
	return ports, errs, len(p.ports)
}

// dialled is how many connections have been dialled so far.
func (p *soakConns) dialled() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ports)
}

// exposed returns, after the SIGKILL of victim, the ports of the
// persistent connections it may have closed, from held (client port ->
// pid, from ss) taken just before it, when since connections had been
// dialled: the victim's own; every one not held by another worker of the
// current slots (in flight in a handover, or on a retiring worker or an
// old generation's, which may have been handing it to the victim); and
// every one dialled since.
func (p *soakConns) exposed(held map[int]int, victim int, slots []int, since int) []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for i, port := range p.ports {
		pid, ok := held[port]
		if i >= since || !ok || pid == victim || !slices.Contains(slots, pid) {
			out = append(out, port)
		}
	}
	return out
}
