package worker_test

// A client that reads slowly: a blocked write keeps the connection's
// answers and unanswered input until the client reads again.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/control"
	"github.com/camelot/lancelot/shared/protocol"
	"github.com/camelot/lancelot/worker"
)

// slowReader starts an engine that answers "a?" with a kilobyte, so a
// pipelined burst fills every buffer on the way back, and connects a
// client with a small receive buffer (dialSmall) that sends burst.
func slowReader(t *testing.T, loops int, burst string) (s *testEngine, conn net.Conn, answer string) {
	t.Helper()
	answer = strings.Repeat("x", 1023) + "."
	table, err := protocol.NewTable(map[string]string{"a?": answer})
	if err != nil {
		t.Fatal(err)
	}
	s = startEngine(t, loops, worker.Options{Table: table})
	conn = dialSmall(t, s.addr)
	if _, err := conn.Write([]byte(burst)); err != nil {
		t.Fatal(err)
	}
	return s, conn, answer
}

// dialSmall connects with a small receive buffer, so the server's writes
// block early.
func dialSmall(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readAllWithin reads until EOF or the bound.
func readAllWithin(t *testing.T, conn net.Conn, within time.Duration) ([]byte, error) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(within))
	return io.ReadAll(conn)
}

// TestBlockedWriteKeepsOrder: a client that sends a long pipelined burst
// and reads only later gets every answer, in order, exactly once.
func TestBlockedWriteKeepsOrder(t *testing.T) {
	t.Parallel()
	forEachLoopCount(t, func(t *testing.T, loops int) {
		const n = 3000 // 3 MB of answers to 6 KB of questions
		s, conn, answer := slowReader(t, loops, strings.Repeat("a?", n))
		time.Sleep(100 * time.Millisecond) // let the server's writes block
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		got := make([]byte, n*len(answer))
		if _, err := io.ReadFull(conn, got); err != nil {
			t.Fatalf("read answers: %v", err)
		}
		if want := strings.Repeat(answer, n); string(got) != want {
			t.Fatalf("answers differ from %d x %q", n, answer[len(answer)-4:])
		}
		s.waitStats(control.Stats{Answered: n, Accepted: 1, Active: 1})
	})
}

// TestUnknownAfterBlockedWrite: the answers owed before an unknown
// question are all delivered, even when they wait on a slow reader, and
// only then is the connection closed.
func TestUnknownAfterBlockedWrite(t *testing.T) {
	t.Parallel()
	forEachLoopCount(t, func(t *testing.T, loops int) {
		const n = 1000
		s, conn, answer := slowReader(t, loops, strings.Repeat("a?", n)+"b?a?")
		time.Sleep(100 * time.Millisecond)
		got, err := readAllWithin(t, conn, 10*time.Second)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("read: %v", err)
		}
		if want := strings.Repeat(answer, n); !bytes.Equal(got, []byte(want)) {
			t.Fatalf("got %d bytes before the close, want %d answers (%d bytes)", len(got), n, len(want))
		}
		s.waitStats(control.Stats{Answered: n, Unknown: 1, Accepted: 1, Active: 0})
	})
}

// TestShutdownDuringBlockedWrite: at the shutdown deadline a connection
// whose answers are still being written is closed once they are, not
// before.
func TestShutdownDuringBlockedWrite(t *testing.T) {
	t.Parallel()
	forEachLoopCount(t, func(t *testing.T, loops int) {
		const n = 2000
		s, conn, answer := slowReader(t, loops, strings.Repeat("a?", n))
		s.waitStatsFunc("some answered", func(st control.Stats) bool { return st.Answered > 0 })
		done := s.shutdown(50 * time.Millisecond)
		time.Sleep(200 * time.Millisecond) // past the deadline, answers pending
		got, err := readAllWithin(t, conn, 10*time.Second)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if len(got) != n*len(answer) {
			t.Fatalf("got %d bytes, want %d answers (%d bytes) then EOF", len(got), n, n*len(answer))
		}
		if err := waitErr(t, done, 5*time.Second, "Shutdown"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown() = %v, want context.DeadlineExceeded", err)
		}
	})
}
