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

// withEngines runs test once per loop count, as forEachLoopCount does,
// with an engine started by startEngine(t, loops, o).
func withEngines(t *testing.T, o worker.Options, test func(t *testing.T, s *testEngine)) {
	t.Helper()
	forEachLoopCount(t, func(t *testing.T, loops int) {
		test(t, startEngine(t, loops, o))
	})
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

// expectStopped checks the engine stopped serving its listener, after
// the call named what: Serve returned, and new clients are refused.
func (s *testEngine) expectStopped(what string) {
	s.t.Helper()
	s.waitServed(2 * time.Second)
	if conn, err := net.DialTimeout("tcp", s.addr, time.Second); err == nil {
		conn.Close()
		s.t.Errorf("dial after %s succeeded, want refused", what)
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
	withEngines(t, worker.Options{}, func(t *testing.T, s *testEngine) {
		c := lancelottest.Dial(t, s.addr)
		for _, qa := range [][2]string{{lancelottest.QName, lancelottest.AName}, {lancelottest.QQuest, lancelottest.AQuest}, {lancelottest.QColor, lancelottest.AColor}, {lancelottest.QName, lancelottest.AName}} {
			c.Ask(qa[0], qa[1])
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
		c.Ask("Who are you?Why?", "A knight.Because.")
		c.Send(lancelottest.QName) // not in the custom table
		c.ExpectClosed(5 * time.Second)
	})
}

func TestPipelined(t *testing.T) {
	t.Parallel()
	withEngines(t, worker.Options{}, func(t *testing.T, s *testEngine) {
		c := lancelottest.Dial(t, s.addr)
		var qs, as strings.Builder
		table := lancelottest.Exchanges()
		for i := range 500 {
			qs.WriteString(table[i%3][0])
			as.WriteString(table[i%3][1])
		}
		// One write, read while writing would block neither side: 500
		// answers are far below the socket buffers.
		c.Ask(qs.String(), as.String())
		s.waitStats(control.Stats{Answered: 500, Accepted: 1, Active: 1})
	})
}

// TestSplitReads sends questions one byte per write, pausing so each byte
// reaches the server in its own segment.
func TestSplitReads(t *testing.T) {
	t.Parallel()
	withEngines(t, worker.Options{}, func(t *testing.T, s *testEngine) {
		c := lancelottest.Dial(t, s.addr)
		for _, b := range []byte(lancelottest.QName + lancelottest.QColor) {
			c.Send(string(b))
			time.Sleep(time.Millisecond) // nothing to wait for: spread the bytes out
		}
		c.ExpectAll(lancelottest.AName + lancelottest.AColor)
		// A question split across two writes in the middle of another
		// answer's batch.
		c.Ask(lancelottest.QQuest+"What is", lancelottest.AQuest)
		c.Ask(" your name?", lancelottest.AName)
	})
}

func TestWhitespace(t *testing.T) {
	t.Parallel()
	withEngines(t, worker.Options{}, func(t *testing.T, s *testEngine) {
		c := lancelottest.Dial(t, s.addr)
		c.Ask(" \t\r\n"+lancelottest.QName+"\r\n", lancelottest.AName)
		c.Ask("\n\n"+lancelottest.QQuest+"  \t"+lancelottest.QColor+"\r\n", lancelottest.AQuest+lancelottest.AColor)
		// Whitespace alone, in many reads, is not a question.
		for range 3 {
			c.Send(" \r\n\t")
		}
		c.Ask(lancelottest.QName, lancelottest.AName)
		// Whitespace inside a question is part of it: this one is unknown.
		c.Send("What  is your name?")
		c.ExpectClosed(5 * time.Second)
	})
}

func TestUnknownQuestion(t *testing.T) {
	t.Parallel()
	withEngines(t, worker.Options{}, func(t *testing.T, s *testEngine) {
		other := lancelottest.Dial(t, s.addr)
		c := lancelottest.Dial(t, s.addr)
		// Earlier questions are answered; the unknown one and everything
		// after it are not.
		c.Ask(lancelottest.QName+lancelottest.QQuest+"What is the capital of Assyria?"+lancelottest.QColor, lancelottest.AName+lancelottest.AQuest)
		c.ExpectClosed(5 * time.Second)
		other.Ask(lancelottest.QColor, lancelottest.AColor)
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
			withEngines(t, worker.Options{}, func(t *testing.T, s *testEngine) {
				c := lancelottest.Dial(t, s.addr)
				c.Ask(tc.in, tc.answer)
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
			withEngines(t, worker.Options{Table: table, MaxQuestionBytes: 8}, func(t *testing.T, s *testEngine) {
				c := lancelottest.Dial(t, s.addr)
				c.Ask(tc.in, tc.answer)
				if tc.closed {
					// Well before the read timeout (long).
					c.ExpectClosed(5 * time.Second)
					return
				}
				c.Ask("Ab?", "No.")
			})
		})
	}
}

func TestDefaultMaxQuestionBytes(t *testing.T) {
	t.Parallel()
	withEngines(t, worker.Options{}, func(t *testing.T, s *testEngine) {
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
	withEngines(t, worker.Options{}, func(t *testing.T, s *testEngine) {
		if got := s.eng.Stats(); !reflect.DeepEqual(got, control.Stats{}) {
			t.Fatalf("Stats() of a new engine = %+v, want zero", got)
		}
		a := lancelottest.Dial(t, s.addr)
		a.Ask(lancelottest.QName+lancelottest.QQuest+lancelottest.QColor, lancelottest.AName+lancelottest.AQuest+lancelottest.AColor)
		s.waitStats(control.Stats{Answered: 3, Accepted: 1, Active: 1})

		b := lancelottest.Dial(t, s.addr)
		b.Ask(lancelottest.QName+"Huh?", lancelottest.AName)
		b.ExpectClosed(5 * time.Second)
		s.waitStats(control.Stats{Answered: 4, Unknown: 1, Accepted: 2, Active: 1})

		c := lancelottest.Dial(t, s.addr)
		c.Send("What is") // mid-question: counted as active, not answered
		s.waitStats(control.Stats{Answered: 4, Unknown: 1, Accepted: 3, Active: 2})

		a.Conn.Close()
		s.waitStats(control.Stats{Answered: 4, Unknown: 1, Accepted: 3, Active: 1})
		c.Ask(" your quest?", lancelottest.AQuest)
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
	withEngines(t, worker.Options{ReadTimeout: read, IdleTimeout: long}, func(t *testing.T, s *testEngine) {
		talker := lancelottest.Dial(t, s.addr)
		talker.Ask(lancelottest.QName, lancelottest.AName)
		silent := lancelottest.Dial(t, s.addr)
		silent.ExpectClosedAfter(read)
		talker.ExpectOpen(read)
		talker.Ask(lancelottest.QQuest, lancelottest.AQuest)
		s.waitStatsFunc("one read_timeout close", func(st control.Stats) bool { return st.Closed["read_timeout"] == 1 })
	})
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	const idle = 300 * time.Millisecond
	withEngines(t, worker.Options{IdleTimeout: idle}, func(t *testing.T, s *testEngine) {
		// Between questions: questions closer than the idle timeout keep
		// the connection open longer than the timeout in total.
		c := lancelottest.Dial(t, s.addr)
		start := time.Now()
		for range 4 {
			c.Ask(lancelottest.QName, lancelottest.AName)
			time.Sleep(idle / 3) // the client's think time under test
		}
		if time.Since(start) < idle {
			t.Fatalf("test too fast to mean anything")
		}
		c.Ask(lancelottest.QQuest, lancelottest.AQuest)
		c.ExpectClosedAfter(idle)
	})
}

// TestReadTimeout: a started question must complete within ReadTimeout,
// even when its bytes keep trickling in.
func TestReadTimeout(t *testing.T) {
	t.Parallel()
	const readTimeout = 300 * time.Millisecond
	withEngines(t, worker.Options{ReadTimeout: readTimeout}, func(t *testing.T, s *testEngine) {
		stalled := lancelottest.Dial(t, s.addr)
		stalled.Ask(lancelottest.QName, lancelottest.AName)
		stalled.Send("What is")
		stalled.ExpectClosedAfter(readTimeout)

		// One byte every 50ms: the question would take 900ms.
		trickle := lancelottest.Dial(t, s.addr)
		start := time.Now()
		werr := lancelottest.Trickle(trickle.Conn, lancelottest.QName, 50*time.Millisecond)
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
	withEngines(t, worker.Options{WriteTimeout: writeTimeout}, func(t *testing.T, s *testEngine) {
		conn := dialSmall(t, s.addr) // a small receive window fills quickly
		errc := lancelottest.Flood(conn, lancelottest.QName, 20*time.Second)

		// Meanwhile another client is served.
		other := lancelottest.Dial(t, s.addr)
		other.Ask(lancelottest.QColor, lancelottest.AColor)

		lancelottest.ExpectCut(t, conn, errc, 15*time.Second)
		other.Ask(lancelottest.QName, lancelottest.AName)
		s.waitStatsFunc("the flooding client gone, the other active", func(st control.Stats) bool {
			return st.Accepted == 2 && st.Active == 1 && st.Unknown == 0
		})
	})
}

func TestShutdownNoConnections(t *testing.T) {
	t.Parallel()
	withEngines(t, worker.Options{}, func(t *testing.T, s *testEngine) {
		start := time.Now()
		err := waitErr(t, s.shutdown(long), 2*time.Second, "Shutdown with no connections")
		if err != nil || time.Since(start) > time.Second {
			t.Errorf("Shutdown with no connections = %v after %v, want nil at once", err, time.Since(start))
		}
		s.expectStopped("Shutdown")
	})
}

// TestShutdownIdleAndMidQuestion: until the deadline open connections are
// served; at the deadline an idle connection is closed, while one in the
// middle of a question gets its answer and is closed after it. Shutdown
// then returns context.DeadlineExceeded.
func TestShutdownIdleAndMidQuestion(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	withEngines(t, worker.Options{}, func(t *testing.T, s *testEngine) {
		idle := lancelottest.Dial(t, s.addr)
		idle.Ask(lancelottest.QName, lancelottest.AName)
		mid := lancelottest.Dial(t, s.addr)
		mid.Ask(lancelottest.QQuest, lancelottest.AQuest)
		mid.Send("What is your")
		s.waitStats(control.Stats{Answered: 2, Accepted: 2, Active: 2})

		start := time.Now()
		done := s.shutdown(timeout)
		s.waitServed(2 * time.Second)
		// Before the deadline: still served.
		idle.Ask(lancelottest.QColor, lancelottest.AColor)
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
		mid.Ask(" favorite color?", lancelottest.AColor)
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
	withEngines(t, worker.Options{}, func(t *testing.T, s *testEngine) {
		c := lancelottest.Dial(t, s.addr)
		c.Ask(lancelottest.QName, lancelottest.AName)
		done := s.shutdown(long)
		s.waitServed(2 * time.Second)
		c.Ask(lancelottest.QQuest, lancelottest.AQuest)
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
	withEngines(t, worker.Options{}, func(t *testing.T, s *testEngine) {
		idle := lancelottest.Dial(t, s.addr)
		idle.Ask(lancelottest.QName, lancelottest.AName)
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
		s.expectStopped("Close")
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
	withEngines(t, worker.Options{}, func(t *testing.T, s *testEngine) {
		second := s.serve()
		for _, addr := range []string{s.addr, second} {
			c := lancelottest.Dial(t, addr)
			c.Ask(lancelottest.QName, lancelottest.AName)
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
	withEngines(t, worker.Options{}, func(t *testing.T, s *testEngine) {
		holders := make([]*lancelottest.Client, 200)
		for i := range holders {
			holders[i] = lancelottest.Dial(t, s.addr)
			holders[i].Send("What is your")
		}
		s.waitStats(control.Stats{Accepted: 200, Active: 200})
		start := time.Now()
		c := lancelottest.Dial(t, s.addr)
		c.Ask(lancelottest.QName, lancelottest.AName)
		if d := time.Since(start); d > time.Second {
			t.Errorf("new client answered after %v with 200 clients holding questions", d)
		}
		lancelottest.AskAll(t, holders, " quest?", lancelottest.AQuest)
		s.waitStats(control.Stats{Answered: 201, Accepted: 201, Active: 201})
	})
}

// TestHalfClose: a client that sends its questions and then shuts down its
// writing side (as `printf ... | nc -N` does) still gets every answer, then
// the connection closes.
func TestHalfClose(t *testing.T) {
	t.Parallel()
	withEngines(t, worker.Options{}, func(t *testing.T, s *testEngine) {
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
	withEngines(t, worker.Options{}, func(t *testing.T, s *testEngine) {
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
		c.Ask(" name?", lancelottest.AName)

		readShort := startEngine(t, loops, worker.Options{ReadTimeout: short})
		c = lancelottest.Dial(t, readShort.addr)
		c.Ask(lancelottest.QName, lancelottest.AName)
		c.ExpectOpen(3 * short)
		c.Ask(lancelottest.QQuest, lancelottest.AQuest)
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
		c.Ask(lancelottest.QName, lancelottest.AName)
		eng.Close()
		if err := waitErr(t, served, 5*time.Second, "Serve"); !errors.Is(err, worker.ErrStopped) {
			t.Errorf("Serve() = %v, want ErrStopped", err)
		}
		if _, err := net.Dial("unix", path); err == nil {
			t.Errorf("dial %s after Close succeeded", path)
		}
	})
}
