package lancelottest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// ioTimeout bounds every read and dial a Client makes, unless a method
// takes its own bound: long enough for a loaded machine, short enough that
// a hung server fails the test rather than the test binary's timeout.
const ioTimeout = 5 * time.Second

// Client is one client connection with a reader for answers. Its methods
// fail the test; they must be called from the test's goroutine.
type Client struct {
	// Conn is the connection, for what the methods do not cover (a
	// half-close, a raw write); it is closed when the test ends.
	Conn net.Conn
	// Reader buffers what the server sent; read answers through it, not
	// Conn, once a method has read.
	Reader *bufio.Reader
	t      testing.TB
}

// Dial connects to addr, failing the test if it cannot within 5 s.
func Dial(t testing.TB, addr string) *Client {
	t.Helper()
	return NewClient(t, DialConn(t, addr))
}

// DialFrom connects to addr from the local address src (127.0.0.x), so a
// test can play several client hosts.
func DialFrom(t testing.TB, addr, src string) *Client {
	t.Helper()
	conn, err := DialSource(addr, src, ioTimeout)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	t.Cleanup(func() { conn.Close() })
	return NewClient(t, conn)
}

// NewClient wraps a connection the test opened itself (a unix socket, a
// dialer with options); the caller closes conn.
func NewClient(t testing.TB, conn net.Conn) *Client {
	return &Client{t: t, Conn: conn, Reader: bufio.NewReader(conn)}
}

// Send writes s as it is.
func (c *Client) Send(s string) {
	c.t.Helper()
	if _, err := c.Conn.Write([]byte(s)); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

// Expect reads one answer (up to and including '.') within 5 s and checks
// it is want.
func (c *Client) Expect(want string) {
	c.t.Helper()
	c.Conn.SetReadDeadline(time.Now().Add(ioTimeout))
	got, err := c.Reader.ReadString('.')
	if err != nil || got != want {
		c.t.Fatalf("answer = %q, %v; want %q", got, err, want)
	}
}

// ExpectAll reads exactly len(want) bytes within 5 s, several answers or
// none, and checks they are want.
func (c *Client) ExpectAll(want string) {
	c.t.Helper()
	c.Conn.SetReadDeadline(time.Now().Add(ioTimeout))
	got := make([]byte, len(want))
	n, err := io.ReadFull(c.Reader, got)
	if err != nil || string(got) != want {
		c.t.Fatalf("answers = %q, %v; want %q", got[:n], err, want)
	}
}

// Ask sends q and checks the answers are want, as ExpectAll does.
func (c *Client) Ask(q, want string) {
	c.t.Helper()
	c.Send(q)
	c.ExpectAll(want)
}

// ExpectClosed checks the server closes the connection (EOF or reset)
// within the bound, without sending anything more.
func (c *Client) ExpectClosed(within time.Duration) {
	c.t.Helper()
	c.Conn.SetReadDeadline(time.Now().Add(within))
	b, err := io.ReadAll(c.Reader)
	if len(b) > 0 || (err != nil && !IsReset(err)) {
		c.t.Fatalf("read %q, %v; want EOF within %v", b, err, within)
	}
}

// ExpectClosedAfter checks the server closes the connection, as
// ExpectClosed does within 5 s, and not before half of d from now: d is
// the timeout under test, which a loaded machine may not keep exactly.
func (c *Client) ExpectClosedAfter(d time.Duration) {
	c.t.Helper()
	start := time.Now()
	c.ExpectClosed(ioTimeout)
	if took := time.Since(start); took < d/2 {
		c.t.Errorf("connection closed after %v, want about %v", took, d)
	}
}

// ExpectOpen checks the server neither sends anything nor closes the
// connection for d.
func (c *Client) ExpectOpen(d time.Duration) {
	c.t.Helper()
	c.Conn.SetReadDeadline(time.Now().Add(d))
	b, err := c.Reader.ReadByte()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		c.t.Fatalf("read %q, %v; want the connection open and silent for %v", b, err, d)
	}
}

// AskAll sends rest on every client at once, each completing the question
// it holds, and checks every one is answered want within 10 s. It calls no
// method of Client, which must run on the test's goroutine.
func AskAll(t testing.TB, clients []*Client, rest, want string) {
	t.Helper()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			if _, err := c.Conn.Write([]byte(rest)); err != nil {
				t.Errorf("finish held question: %v", err)
				return
			}
			c.Conn.SetReadDeadline(time.Now().Add(2 * ioTimeout))
			got := make([]byte, len(want))
			if n, err := io.ReadFull(c.Reader, got); err != nil || string(got) != want {
				t.Errorf("held question answered %q, %v; want %q", got[:n], err, want)
			}
		})
	}
	wg.Wait()
}
