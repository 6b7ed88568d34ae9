package worker_test

// Tests of the engine through its public API, on real sockets on
// 127.0.0.1. Every test runs twice: with the loops NewEventLoop starts (one
// per GOMAXPROCS, often one here), and with three loops sharing each
// listener, so the paths of several loops run on any machine.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/control"
	"github.com/camelot/lancelot/shared/lancelottest"
	"github.com/camelot/lancelot/shared/protocol"
	"github.com/camelot/lancelot/worker"
)

// long is a timeout no test waits for: set where a test is not about it.
const long = 10 * time.Second

// forEachLoopCount runs test once per loop count, as parallel subtests:
// 0 for NewEventLoop's own count, and 3.
func forEachLoopCount(t *testing.T, test func(t *testing.T, loops int)) {
	t.Helper()
	for _, loops := range []int{0, 3} {
		t.Run(fmt.Sprintf("%dloops", loops), func(t *testing.T) {
			t.Parallel()
			test(t, loops)
		})
	}
}

// newEngine is an engine with o and the given number of loops (0: one
// per GOMAXPROCS).
func newEngine(o worker.Options, loops int) *worker.EventLoop {
	if loops == 0 {
		return worker.NewEventLoop(o)
	}
	return worker.NewEventLoopN(o, loops)
}

// testEngine is an engine serving one listener on 127.0.0.1.
type testEngine struct {
	t      *testing.T
	eng    *worker.EventLoop
	addr   string
	served chan error // Serve's results
	serves int        // Serve calls not yet waited for
}

// startEngine builds an engine with o (timeouts not set default to long)
// and serves a fresh listener with it. When the test ends the engine is
// closed and Serve must have returned.
func startEngine(t *testing.T, loops int, o worker.Options) *testEngine {
	t.Helper()
	for _, d := range []*time.Duration{&o.IdleTimeout, &o.ReadTimeout, &o.WriteTimeout} {
		if *d == 0 {
			*d = long
		}
	}
	s := &testEngine{t: t, eng: newEngine(o, loops)}
	s.addr = s.serve()
	t.Cleanup(func() {
		s.eng.Close()
		for s.serves > 0 {
			s.waitServed(5 * time.Second)
		}
	})
	return s
}

// serve starts Serve on a new listener and returns its address.
func (s *testEngine) serve() string {
	s.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.t.Fatal(err)
	}
	if s.served == nil {
		s.served = make(chan error, 8)
	}
	s.serves++
	go func() { s.served <- s.eng.Serve(ln) }()
	return ln.Addr().String()
}

// waitServed waits for one Serve call to return and checks it returned
// ErrStopped.
func (s *testEngine) waitServed(within time.Duration) {
	s.t.Helper()
	select {
	case err := <-s.served:
		s.serves--
		if !errors.Is(err, worker.ErrStopped) {
			s.t.Errorf("Serve() = %v, want worker.ErrStopped", err)
		}
	case <-time.After(within):
		s.t.Fatalf("Serve still running %v after the engine was stopped", within)
	}
}

// waitStats waits until the engine's question and connection counters
// equal want's (the close reasons have tests of their own).
func (s *testEngine) waitStats(want control.Stats) {
	s.t.Helper()
	var got control.Stats
	deadline := time.Now().Add(5 * time.Second)
	for got = s.eng.Stats(); counters(got) != counters(want); got = s.eng.Stats() {
		if time.Now().After(deadline) {
			s.t.Fatalf("Stats() = %+v, want %+v", got, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func counters(s control.Stats) [4]int64 {
	return [4]int64{int64(s.Answered), int64(s.Unknown), int64(s.Accepted), s.Active}
}

// waitStatsFunc waits until the engine's counters satisfy ok.
func (s *testEngine) waitStatsFunc(what string, ok func(control.Stats) bool) {
	s.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for got := s.eng.Stats(); !ok(got); got = s.eng.Stats() {
		if time.Now().After(deadline) {
			s.t.Fatalf("Stats() = %+v, want %s", got, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// shutdown calls Shutdown with a timeout in the background.
func (s *testEngine) shutdown(timeout time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		done <- s.eng.Shutdown(ctx)
	}()
	return done
}

func waitErr(t *testing.T, c <-chan error, within time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(within):
		t.Fatalf("%s did not return within %v", what, within)
		return nil
	}
}

func TestAnswers(t *testing.T) {
	t.Parallel()
	forEachLoopCount(t, func(t *testing.T, loops int) {
		s := startEngine(t, loops, worker.Options{})
		c := lancelottest.Dial(t, s.addr)
		for _, qa := range [][2]string{{lancelottest.QName, lancelottest.AName}, {lancelottest.QQuest, lancelottest.AQuest}, {lancelottest.QColor, lancelottest.AColor}, {lancelottest.QName, lancelottest.AName}} {
			c.Send(qa[0])
			c.ExpectAll(qa[1])
		}
	})
}

func TestCustomTable(t *testing.T) {
	t.Parallel()
	forEachLoopCount(t, func(t *testing.T, loops int) {
		table, err := protocol.NewTable(map[string]string{"Who are you?": "A knight.", "Why?": "Because."})
		if err != nil {
			t.Fatal(err)
		}
		s := startEngine(t, loops, worker.Options{Table: table})
		c := lancelottest.Dial(t, s.addr)
		c.Send("Who are you?Why?")
		c.ExpectAll("A knight.Because.")
		c.Send(lancelottest.QName) // not in the custom table
		c.ExpectClosed(5 * time.Second)
	})
}

func TestPipelined(t *testing.T) {
	t.Parallel()
	forEachLoopCount(t, func(t *testing.T, loops int) {
		s := startEngine(t, loops, worker.Options{})
		c := lancelottest.Dial(t, s.addr)
		var qs, as strings.Builder
		table := lancelottest.Exchanges()
		for i := range 500 {
			qs.WriteString(table[i%3][0])
			as.WriteString(table[i%3][1])
		}
		// One write, read while writing would block neither side: 500
		// answers are far below the socket buffers.
		c.Send(qs.String())
		c.ExpectAll(as.String())
		s.waitStats(control.Stats{Answered: 500, Accepted: 1, Active: 1})
	})
}

// TestSplitReads sends questions one byte per write, pausing so each byte
// reaches the server in its own segment.
func TestSplitReads(t *testing.T) {
	t.Parallel()
	forEachLoopCount(t, func(t *testing.T, loops int) {
		s := startEngine(t, loops, worker.Options{})
		c := lancelottest.Dial(t, s.addr)
		for _, b := range []byte(lancelottest.QName + lancelottest.QColor) {
			c.Send(string(b))
			time.Sleep(time.Millisecond) // nothing to wait for: spread the bytes out
		}
		c.ExpectAll(lancelottest.AName + lancelottest.AColor)
		// A question split across two writes in the middle of another
		// answer's batch.
		c.Send(lancelottest.QQuest + "What is")
		c.ExpectAll(lancelottest.AQuest)
		c.Send(" your name?")
		c.ExpectAll(lancelottest.AName)
	})
}

func TestWhitespace(t *testing.T) {
	t.Parallel()
	forEachLoopCount(t, func(t *testing.T, loops int) {
		s := startEngine(t, loops, worker.Options{})
		c := lancelottest.Dial(t, s.addr)
		c.Send(" \t\r\n" + lancelottest.QName + "\r\n")
		c.ExpectAll(lancelottest.AName)
		c.Send("\n\n" + lancelottest.QQuest + "  \t" + lancelottest.QColor + "\r\n")
		c.ExpectAll(lancelottest.AQuest + lancelottest.AColor)
		// Whitespace alone, in many reads, is not a question.
		for range 3 {
			c.Send(" \r\n\t")
		}
		c.Send(lancelottest.QName)
		c.ExpectAll(lancelottest.AName)
		// Whitespace inside a question is part of it: this one is unknown.
		c.Send("What  is your name?")
		c.ExpectClosed(5 * time.Second)
	})
}

func TestUnknownQuestion(t *testing.T) {
	t.Parallel()
	forEachLoopCount(t, func(t *testing.T, loops int) {
		s := startEngine(t, loops, worker.Options{})
		other := lancelottest.Dial(t, s.addr)
		c := lancelottest.Dial(t, s.addr)
		// Earlier questions are answered; the unknown one and everything
		// after it are not.
		c.Send(lancelottest.QName + lancelottest.QQuest + "What is the capital of Assyria?" + lancelottest.QColor)
		c.ExpectAll(lancelottest.AName + lancelottest.AQuest)
		c.ExpectClosed(5 * time.Second)
		other.Send(lancelottest.QColor)
		other.ExpectAll(lancelottest.AColor)
		s.waitStats(control.Stats{Answered: 3, Unknown: 1, Accepted: 2, Active: 1})
	})
}

func TestNotASCII(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in, answer string
	}{
		{"UTF-8 in a question", "What is your n\xc3\xa6me?", ""},
		{"lone byte without ?", "\xff", ""},
		{"after an answer", lancelottest.QName + "Qu\xe9", lancelottest.AName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			forEachLoopCount(t, func(t *testing.T, loops int) {
				s := startEngine(t, loops, worker.Options{})
				c := lancelottest.Dial(t, s.addr)
				c.Send(tc.in)
				c.ExpectAll(tc.answer)
				// Closed without waiting for a '?' or the read timeout.
				c.ExpectClosed(5 * time.Second)
				s.waitStatsFunc("one connection accepted, none active", func(st control.Stats) bool {
					return st.Accepted == 1 && st.Active == 0 && st.Answered == uint64(len(tc.answer)/len(lancelottest.AName))
				})
			})
		})
	}
}

// TestTooLong: more than MaxQuestionBytes without a '?' closes the
// connection at once; a question of exactly MaxQuestionBytes bytes before
// its '?' is served.
func TestTooLong(t *testing.T) {
	t.Parallel()
	table, err := protocol.NewTable(map[string]string{"Abcdefgh?": "Yes.", "Ab?": "No."})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		in     string
		answer string // expected before the close, if any
		closed bool
	}{
		{"at limit", "Abcdefgh?", "Yes.", false},
		{"at limit after whitespace", "   \r\n  Abcdefgh?", "Yes.", false},
		{"at limit pipelined", "Ab?Abcdefgh?Ab?", "No.Yes.No.", false},
		{"one over", "Abcdefghi", "", true},
		{"one over with ?", "Abcdefghi?", "", true},
		{"after an answer", "Ab?Abcdefghijklmnop", "No.", true},
		{"far over", strings.Repeat("x", 10000), "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			forEachLoopCount(t, func(t *testing.T, loops int) {
				s := startEngine(t, loops, worker.Options{Table: table, MaxQuestionBytes: 8})
				c := lancelottest.Dial(t, s.addr)
				c.Send(tc.in)
				c.ExpectAll(tc.answer)
				if tc.closed {
					// Well before the read timeout (long).
					c.ExpectClosed(5 * time.Second)
					return
				}
				c.Send("Ab?")
				c.ExpectAll("No.")
			})
		})
	}
}

func TestDefaultMaxQuestionBytes(t *testing.T) {
	t.Parallel()
	forEachLoopCount(t, func(t *testing.T, loops int) {
		s := startEngine(t, loops, worker.Options{})
		ok := lancelottest.Dial(t, s.addr)
		ok.Send(strings.Repeat(" ", 5000) + lancelottest.QName) // whitespace does not count
		ok.ExpectAll(lancelottest.AName)
		c := lancelottest.Dial(t, s.addr)
		c.Send(strings.Repeat("x", protocol.DefaultMaxQuestionBytes+1))
		c.ExpectClosed(5 * time.Second)
	})
}

func TestStatsExact(t *testing.T) {
	t.Parallel()
	forEachLoopCount(t, func(t *testing.T, loops int) {
		s := startEngine(t, loops, worker.Options{})
		if got := s.eng.Stats(); !reflect.DeepEqual(got, control.Stats{}) {
			t.Fatalf("Stats() of a new engine = %+v, want zero", got)
		}
		a := lancelottest.Dial(t, s.addr)
		a.Send(lancelottest.QName + lancelottest.QQuest + lancelottest.QColor)
		a.ExpectAll(lancelottest.AName + lancelottest.AQuest + lancelottest.AColor)
		s.waitStats(control.Stats{Answered: 3, Accepted: 1, Active: 1})

		b := lancelottest.Dial(t, s.addr)
		b.Send(lancelottest.QName + "Huh?")
		b.ExpectAll(lancelottest.AName)
		b.ExpectClosed(5 * time.Second)
		s.waitStats(control.Stats{Answered: 4, Unknown: 1, Accepted: 2, Active: 1})

		c := lancelottest.Dial(t, s.addr)
		c.Send("What is") // mid-question: counted as active, not answered
		s.waitStats(control.Stats{Answered: 4, Unknown: 1, Accepted: 3, Active: 2})

		a.Conn.Close()
		s.waitStats(control.Stats{Answered: 4, Unknown: 1, Accepted: 3, Active: 1})
		c.Send(" your quest?")
		c.ExpectAll(lancelottest.AQuest)
		c.Conn.Close()
		s.waitStats(control.Stats{Answered: 5, Unknown: 1, Accepted: 3, Active: 0})
	})
}

// TestFirstByteTimeout: a new connection must send its first byte within
// the read timeout, not the (longer) idle timeout; once it has asked, it
// may idle.
func TestFirstByteTimeout(t *testing.T) {
	t.Parallel()
	const read = 300 * time.Millisecond
	forEachLoopCount(t, func(t *testing.T, loops int) {
		s := startEngine(t, loops, worker.Options{ReadTimeout: read, IdleTimeout: long})
		talker := lancelottest.Dial(t, s.addr)
		talker.Send(lancelottest.QName)
		talker.ExpectAll(lancelottest.AName)
		silent := lancelottest.Dial(t, s.addr)
		start := time.Now()
		silent.ExpectClosed(5 * time.Second)
		if d := time.Since(start); d < read/2 {
			t.Errorf("silent connection closed after %v, want about %v", d, read)
		}
		talker.ExpectOpen(read)
		talker.Send(lancelottest.QQuest)
		talker.ExpectAll(lancelottest.AQuest)
		s.waitStatsFunc("one read_timeout close", func(st control.Stats) bool { return st.Closed["read_timeout"] == 1 })
	})
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	const idle = 300 * time.Millisecond
	forEachLoopCount(t, func(t *testing.T, loops int) {
		s := startEngine(t, loops, worker.Options{IdleTimeout: idle})
		// Between questions: questions closer than the idle timeout keep
		// the connection open longer than the timeout in total.
		c := lancelottest.Dial(t, s.addr)
		start := time.Now()
		for range 4 {
			c.Send(lancelottest.QName)
			c.ExpectAll(lancelottest.AName)
			time.Sleep(idle / 3) // the client's think time under test
		}
		if time.Since(start) < idle {
			t.Fatalf("test too fast to mean anything")
		}
		c.Send(lancelottest.QQuest)
		c.ExpectAll(lancelottest.AQuest)
		start = time.Now()
		c.ExpectClosed(5 * time.Second)
		if d := time.Since(start); d < idle/2 {
			t.Errorf("connection closed %v after its last answer, want about %v", d, idle)
		}
	})
}

// TestReadTimeout: a started question must complete within ReadTimeout,
// even when its bytes keep trickling in.
func TestReadTimeout(t *testing.T) {
	t.Parallel()
	const readTimeout = 300 * time.Millisecond
	forEachLoopCount(t, func(t *testing.T, loops int) {
		s := startEngine(t, loops, worker.Options{ReadTimeout: readTimeout})
		stalled := lancelottest.Dial(t, s.addr)
		stalled.Send(lancelottest.QName)
		stalled.ExpectAll(lancelottest.AName)
		start := time.Now()
		stalled.Send("What is")
		stalled.ExpectClosed(5 * time.Second)
		if d := time.Since(start); d < readTimeout/2 {
			t.Errorf("stalled question closed after %v, want about %v", d, readTimeout)
		}

		// One byte every 50ms: the question would take 900ms.
		trickle := lancelottest.Dial(t, s.addr)
		start = time.Now()
		var werr error
		for _, b := range []byte(lancelottest.QName) {
			if _, werr = trickle.Conn.Write([]byte{b}); werr != nil {
				break
			}
			time.Sleep(50 * time.Millisecond) // the slow client under test
		}
		trickle.ExpectClosed(5 * time.Second)
		if d := time.Since(start); d > 3*readTimeout && werr == nil {
			t.Errorf("trickling client kept for %v; want it cut after about %v", d, readTimeout)
		}
	})
}

// TestWriteTimeout: a client that sends questions but never reads the
// answers is cut after WriteTimeout, and the engine keeps serving others.
func TestWriteTimeout(t *testing.T) {
	t.Parallel()
	const writeTimeout = 300 * time.Millisecond
	forEachLoopCount(t, func(t *testing.T, loops int) {
		s := startEngine(t, loops, worker.Options{WriteTimeout: writeTimeout})
		d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			// A small receive window fills quickly.
			return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		}}
		conn, err := d.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		errc := make(chan error, 1)
		go func() { errc <- floodWithoutReading(conn, 20*time.Second) }()

		// Meanwhile another client is served.
		other := lancelottest.Dial(t, s.addr)
		other.Send(lancelottest.QColor)
		other.ExpectAll(lancelottest.AColor)

		select {
		case err := <-errc:
			if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
				t.Errorf("flooding client got %v after %v, want the server to reset it", err, time.Since(start))
			}
		case <-time.After(15 * time.Second):
			conn.Close()
			<-errc
			t.Fatalf("client that never reads still connected after 15s (write timeout %v)", writeTimeout)
		}
		other.Send(lancelottest.QName)
		other.ExpectAll(lancelottest.AName)
		s.waitStatsFunc("the flooding client gone, the other active", func(st control.Stats) bool {
			return st.Accepted == 2 && st.Active == 1 && st.Unknown == 0
		})
	})
}

// floodWithoutReading writes pipelined questions to conn until a write
// fails, and never reads; it returns the error.
func floodWithoutReading(conn net.Conn, limit time.Duration) error {
	chunk := []byte(strings.Repeat(lancelottest.QName, 1000))
	conn.SetWriteDeadline(time.Now().Add(limit))
	for {
		if _, err := conn.Write(chunk); err != nil {
			return err
		}
	}
}

func TestShutdownNoConnections(t *testing.T) {
	t.Parallel()
	forEachLoopCount(t, func(t *testing.T, loops int) {
		s := startEngine(t, loops, worker.Options{})
		start := time.Now()
		err := waitErr(t, s.shutdown(long), 2*time.Second, "Shutdown with no connections")
		if err != nil || time.Since(start) > time.Second {
			t.Errorf("Shutdown with no connections = %v after %v, want nil at once", err, time.Since(start))
		}
		s.waitServed(2 * time.Second)
		// The listener is closed: new clients are refused.
		if conn, err := net.DialTimeout("tcp", s.addr, time.Second); err == nil {
			conn.Close()
			t.Errorf("dial after Shutdown succeeded, want refused")
		}
	})
}

// TestShutdownIdleAndMidQuestion: until the deadline open connections are
// served; at the deadline an idle connection is closed, while one in the
// middle of a question gets its answer and is closed after it. Shutdown
// then returns context.DeadlineExceeded.
func TestShutdownIdleAndMidQuestion(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	forEachLoopCount(t, func(t *testing.T, loops int) {
		s := startEngine(t, loops, worker.Options{})
		idle := lancelottest.Dial(t, s.addr)
		idle.Send(lancelottest.QName)
		idle.ExpectAll(lancelottest.AName)
		mid := lancelottest.Dial(t, s.addr)
		mid.Send(lancelottest.QQuest)
		mid.ExpectAll(lancelottest.AQuest)
		mid.Send("What is your")
		s.waitStats(control.Stats{Answered: 2, Accepted: 2, Active: 2})

		start := time.Now()
		done := s.shutdown(timeout)
		s.waitServed(2 * time.Second)
		// Before the deadline: still served.
		idle.Send(lancelottest.QColor)
		idle.ExpectAll(lancelottest.AColor)
		if time.Since(start) >= timeout {
			t.Fatalf("test too slow: the shutdown deadline passed before it could check")
		}
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned %v with connections open before its deadline", err)
		default:
		}
		// At the deadline: the idle one is closed.
		idle.ExpectClosed(5 * time.Second)
		if d := time.Since(start); d < timeout-50*time.Millisecond {
			t.Errorf("idle connection closed %v into Shutdown, want at its %v deadline", d, timeout)
		}
		// The mid-question one is still open and gets its answer.
		mid.Send(" favorite color?")
		mid.ExpectAll(lancelottest.AColor)
		mid.ExpectClosed(5 * time.Second)
		if err := waitErr(t, done, 5*time.Second, "Shutdown"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown() = %v, want context.DeadlineExceeded", err)
		}
		if got := s.eng.Stats(); got.Active != 0 || got.Answered != 4 {
			t.Errorf("Stats() after Shutdown = %+v, want 4 answered and none active", got)
		}
	})
}

// TestShutdownWaitsForClients: Shutdown returns nil as soon as the last
// connection closes by itself, before its deadline.
func TestShutdownWaitsForClients(t *testing.T) {
	t.Parallel()
	forEachLoopCount(t, func(t *testing.T, loops int) {
		s := startEngine(t, loops, worker.Options{})
		c := lancelottest.Dial(t, s.addr)
		c.Send(lancelottest.QName)
		c.ExpectAll(lancelottest.AName)
		done := s.shutdown(long)
		s.waitServed(2 * time.Second)
		c.Send(lancelottest.QQuest)
		c.ExpectAll(lancelottest.AQuest)
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned %v while a connection was open", err)
		default:
		}
		start := time.Now()
		c.Conn.Close()
		if err := waitErr(t, done, 5*time.Second, "Shutdown"); err != nil || time.Since(start) > 2*time.Second {
			t.Errorf("Shutdown() = %v, %v after the last client left; want nil at once", err, time.Since(start))
		}
	})
}

func TestClose(t *testing.T) {
	t.Parallel()
	forEachLoopCount(t, func(t *testing.T, loops int) {
		s := startEngine(t, loops, worker.Options{})
		idle := lancelottest.Dial(t, s.addr)
		idle.Send(lancelottest.QName)
		idle.ExpectAll(lancelottest.AName)
		mid := lancelottest.Dial(t, s.addr)
		mid.Send("What is your")
		s.waitStats(control.Stats{Answered: 1, Accepted: 2, Active: 2})
		closed := make(chan error, 1)
		go func() { closed <- s.eng.Close() }()
		if err := waitErr(t, closed, 5*time.Second, "Close"); err != nil {
			t.Errorf("Close() = %v, want nil", err)
		}
		if got := s.eng.Stats(); got.Active != 0 {
			t.Errorf("Stats() after Close = %+v, want no active connection", got)
		}
		idle.ExpectClosed(2 * time.Second)
		mid.ExpectClosed(2 * time.Second)
		s.waitServed(2 * time.Second)
		if conn, err := net.DialTimeout("tcp", s.addr, time.Second); err == nil {
			conn.Close()
			t.Errorf("dial after Close succeeded, want refused")
		}
	})
}

// TestServeAfterStop: Serve on a stopped engine returns ErrStopped at
// once and closes the listener it was given.
func TestServeAfterStop(t *testing.T) {
	t.Parallel()
	for _, stop := range []string{"Shutdown", "Close"} {
		t.Run(stop, func(t *testing.T) {
			t.Parallel()
			forEachLoopCount(t, func(t *testing.T, loops int) {
				eng := newEngine(worker.Options{}, loops)
				if stop == "Shutdown" {
					if err := eng.Shutdown(context.Background()); err != nil {
						t.Fatalf("Shutdown of an idle engine = %v, want nil", err)
					}
				} else if err := eng.Close(); err != nil {
					t.Fatalf("Close of an idle engine = %v, want nil", err)
				}
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				served := make(chan error, 1)
				go func() { served <- eng.Serve(ln) }()
				if err := waitErr(t, served, 2*time.Second, "Serve after "+stop); !errors.Is(err, worker.ErrStopped) {
					t.Errorf("Serve after %s = %v, want ErrStopped", stop, err)
				}
				if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
					t.Errorf("Accept on the listener Serve returned from = %v, want net.ErrClosed", err)
				}
			})
		})
	}
}

// TestManyListeners: one engine serves several listeners (a worker may serve
// a removed slot's socket too), and Shutdown stops every Serve.
func TestManyListeners(t *testing.T) {
	t.Parallel()
	forEachLoopCount(t, func(t *testing.T, loops int) {
		s := startEngine(t, loops, worker.Options{})
		second := s.serve()
		for _, addr := range []string{s.addr, second} {
			c := lancelottest.Dial(t, addr)
			c.Send(lancelottest.QName)
			c.ExpectAll(lancelottest.AName)
			c.Conn.Close()
		}
		s.waitStats(control.Stats{Answered: 2, Accepted: 2, Active: 0})
		if err := waitErr(t, s.shutdown(long), 5*time.Second, "Shutdown"); err != nil {
			t.Errorf("Shutdown() = %v, want nil", err)
		}
		s.waitServed(2 * time.Second)
		s.waitServed(2 * time.Second)
	})
}

// TestManyClients: clients holding unfinished questions do not delay a new
// one.
func TestManyClients(t *testing.T) {
	t.Parallel()
	forEachLoopCount(t, func(t *testing.T, loops int) {
		s := startEngine(t, loops, worker.Options{})
		holders := make([]*lancelottest.Client, 200)
		for i := range holders {
			holders[i] = lancelottest.Dial(t, s.addr)
			holders[i].Send("What is your")
		}
		s.waitStats(control.Stats{Accepted: 200, Active: 200})
		start := time.Now()
		c := lancelottest.Dial(t, s.addr)
		c.Send(lancelottest.QName)
		c.ExpectAll(lancelottest.AName)
		if d := time.Since(start); d > time.Second {
			t.Errorf("new client answered after %v with 200 clients holding questions", d)
		}
		var wg sync.WaitGroup
		for _, h := range holders {
			wg.Go(func() {
				if _, err := h.Conn.Write([]byte(" quest?")); err != nil {
					t.Errorf("finish held question: %v", err)
					return
				}
				h.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				got := make([]byte, len(lancelottest.AQuest))
				if _, err := io.ReadFull(h.Reader, got); err != nil || string(got) != lancelottest.AQuest {
					t.Errorf("held question answered %q, %v", got, err)
				}
			})
		}
		wg.Wait()
		s.waitStats(control.Stats{Answered: 201, Accepted: 201, Active: 201})
	})
}

// TestHalfClose: a client that sends its questions and then shuts down its
// writing side (as `printf ... | nc -N` does) still gets every answer, then
// the connection closes.
func TestHalfClose(t *testing.T) {
	t.Parallel()
	forEachLoopCount(t, func(t *testing.T, loops int) {
		s := startEngine(t, loops, worker.Options{})
		c := lancelottest.Dial(t, s.addr)
		c.Send(lancelottest.QName + "\n" + lancelottest.QQuest + "\n")
		if err := c.Conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		c.ExpectAll(lancelottest.AName + lancelottest.AQuest)
		c.ExpectClosed(5 * time.Second)
		s.waitStats(control.Stats{Answered: 2, Accepted: 1, Active: 0})
	})
}

// TestLongPipeline: a burst far larger than the socket buffers, read while
// it is written, is answered completely and in order.
func TestLongPipeline(t *testing.T) {
	t.Parallel()
	const n = 60000 // about 1.4 MB of answers
	forEachLoopCount(t, func(t *testing.T, loops int) {
		s := startEngine(t, loops, worker.Options{})
		c := lancelottest.Dial(t, s.addr)
		table := lancelottest.Exchanges()
		var qs, as strings.Builder
		for i := range n {
			qs.WriteString(table[i%3][0])
			as.WriteString(table[i%3][1])
		}
		errc := make(chan error, 1)
		go func() {
			c.Conn.SetWriteDeadline(time.Now().Add(20 * time.Second))
			_, err := c.Conn.Write([]byte(qs.String()))
			errc <- err
		}()
		c.Conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		got := make([]byte, as.Len())
		_, rerr := io.ReadFull(c.Reader, got)
		if err := <-errc; err != nil {
			t.Fatalf("write %d pipelined questions: %v", n, err)
		}
		if rerr != nil || string(got) != as.String() {
			i := 0
			for i < len(got) && got[i] == as.String()[i] {
				i++
			}
			t.Fatalf("answers to %d pipelined questions: %v; first difference at byte %d of %d", n, rerr, i, as.Len())
		}
		s.waitStats(control.Stats{Answered: n, Accepted: 1, Active: 1})
	})
}

// TestTimeoutsApart: the idle timeout does not cut a question that has
// started, and the read timeout does not cut a connection idle between
// questions.
func TestTimeoutsApart(t *testing.T) {
	t.Parallel()
	const short = 200 * time.Millisecond
	forEachLoopCount(t, func(t *testing.T, loops int) {
		idleShort := startEngine(t, loops, worker.Options{IdleTimeout: short})
		c := lancelottest.Dial(t, idleShort.addr)
		c.Send("What is your")
		c.ExpectOpen(3 * short)
		c.Send(" name?")
		c.ExpectAll(lancelottest.AName)

		readShort := startEngine(t, loops, worker.Options{ReadTimeout: short})
		c = lancelottest.Dial(t, readShort.addr)
		c.Send(lancelottest.QName)
		c.ExpectAll(lancelottest.AName)
		c.ExpectOpen(3 * short)
		c.Send(lancelottest.QQuest)
		c.ExpectAll(lancelottest.AQuest)
	})
}

// TestUnixListener: an engine serves a unix socket too, and Serve closes
// it, removing its path, as a unix net.Listener's Close does.
func TestUnixListener(t *testing.T) {
	t.Parallel()
	forEachLoopCount(t, func(t *testing.T, loops int) {
		path := filepath.Join(t.TempDir(), "s")
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		eng := newEngine(worker.Options{}, loops)
		served := make(chan error, 1)
		go func() { served <- eng.Serve(ln) }()
		conn, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := lancelottest.NewClient(t, conn)
		c.Send(lancelottest.QName)
		c.ExpectAll(lancelottest.AName)
		eng.Close()
		if err := waitErr(t, served, 5*time.Second, "Serve"); !errors.Is(err, worker.ErrStopped) {
			t.Errorf("Serve() = %v, want ErrStopped", err)
		}
		if _, err := net.Dial("unix", path); err == nil {
			t.Errorf("dial %s after Close succeeded", path)
		}
	})
}
