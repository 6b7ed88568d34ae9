package loadgen_test

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/camelot/lancelot/shared/protocol"
)

// reply decides what the test server does with one question: it returns
// the bytes to send, or close to drop the connection (reset: with RST).
type reply func(q string) (answer string, close, reset bool)

// correct answers from the table, as a server must.
func correct(q string) (string, bool, bool) {
	a, ok := protocol.DefaultAnswers()[q]
	return a, !ok, false
}

// testServer is a tiny Launcelot server on 127.0.0.1:0 whose answers a
// test chooses, and which notes what it saw.
type testServer struct {
	t        testing.TB
	ln       net.Listener
	reply    reply
	split    bool // write answers one byte at a time
	answered atomic.Int64
	resets   atomic.Int64 // connections the client reset
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]bool
	peers    map[string]bool // remote IPs
}

// splitAnswers makes the server write its answers one byte at a time.
func splitAnswers(s *testServer) { s.split = true }

func startTestServer(t testing.TB, r reply, opts ...func(*testServer)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{t: t, ln: ln, reply: r, conns: map[net.Conn]bool{}, peers: map[string]bool{}}
	for _, o := range opts {
		o(s)
	}
	s.wg.Go(s.accept)
	t.Cleanup(s.close)
	return s
}

func (s *testServer) addr() string { return s.ln.Addr().String() }

// close stops accepting, drops every connection and waits for them.
func (s *testServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *testServer) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = true
		s.peers[c.RemoteAddr().(*net.TCPAddr).IP.String()] = true
		s.mu.Unlock()
		s.wg.Go(func() { s.serve(c) })
	}
}

func (s *testServer) serve(c net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 1024)
	for {
		n, err := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		var out []byte
		for {
			q, used, ferr := protocol.Next(buf, 0)
			if ferr != nil || q == nil {
				break
			}
			a, closeIt, reset := s.reply(string(q))
			buf = buf[used:]
			if closeIt {
				s.write(c, out)
				if reset {
					c.(*net.TCPConn).SetLinger(0)
				}
				return
			}
			out = append(out, a...)
			s.answered.Add(1)
		}
		if errors.Is(err, syscall.ECONNRESET) {
			s.resets.Add(1)
		}
		if !s.write(c, out) || err != nil {
			return
		}
	}
}

func (s *testServer) write(c net.Conn, out []byte) bool {
	if !s.split {
		_, err := c.Write(out)
		return err == nil
	}
	for i := range out {
		if _, err := c.Write(out[i : i+1]); err != nil {
			return false
		}
	}
	return true
}

// open is the number of connections open right now.
func (s *testServer) open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *testServer) peerCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.peers)
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	return addr
}
