package worker

// White-box tests of answering on one connection; the engine's behaviour
// is tested through its public API (engine_test.go and the files beside
// it).

import (
	"testing"

	"golang.org/x/sys/unix"
)

// testLoop is a loop driven by the test goroutine, not started, serving
// one end of a socket pair; the test holds the other end.
func testLoop(t testing.TB) (*loop, *elConn, int) {
	t.Helper()
	e := NewEventLoop(Options{})
	l, err := newLoop(e)
	if err != nil {
		t.Fatal(err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	l.addConn(fds[0])
	t.Cleanup(func() {
		if c := l.conn(fds[0]); c != nil {
			l.closeConn(c, errClosing)
		}
		unix.Close(fds[1])
		l.closeFDs()
	})
	return l, l.conns[fds[0]], fds[1]
}

// exchange sends q to the loop's connection, lets the loop answer, and
// reads the answer back.
func exchange(tb testing.TB, l *loop, c *elConn, peer int, q, buf []byte) int {
	if _, err := unix.Write(peer, q); err != nil {
		tb.Fatal(err)
	}
	l.onReadable(c)
	n, err := unix.Read(peer, buf)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// TestExchangeAllocs: answering a question allocates nothing, pipelined
// or split across reads.
func TestExchangeAllocs(t *testing.T) {
	l, c, peer := testLoop(t)
	buf := make([]byte, 256)
	for _, q := range []string{
		"What is your name?",
		"What is your name?What is your quest?What is your favorite color?",
	} {
		qb := []byte(q)
		allocs := testing.AllocsPerRun(1000, func() { exchange(t, l, c, peer, qb, buf) })
		if allocs != 0 {
			t.Errorf("%q: %v allocations per exchange, want 0", q, allocs)
		}
	}
	// A split question allocates its kept input once, then reuses it.
	exchange(t, l, c, peer, []byte("What is your"), buf[:0])
	rest := []byte(" name?What is your")
	allocs := testing.AllocsPerRun(1000, func() {
		unix.Write(peer, rest)
		l.onReadable(c)
		unix.Read(peer, buf)
	})
	if allocs != 0 {
		t.Errorf("split questions: %v allocations per exchange, want 0", allocs)
	}
}

func BenchmarkExchange(b *testing.B) {
	l, c, peer := testLoop(b)
	q := []byte("What is your name?")
	buf := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		exchange(b, l, c, peer, q, buf)
	}
}
