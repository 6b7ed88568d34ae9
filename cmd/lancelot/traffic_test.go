package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// traffic keeps a continuous load on a server while a test changes it:
// book-style clients (connect, ask the three questions, close) and
// long-lived clients (one connection, question after question). It counts
// every failure by kind.
type traffic struct {
	addr      string
	stop      chan struct{}
	wg        sync.WaitGroup
	exchanges atomic.Int64
	conns     atomic.Int64

	mu       sync.Mutex
	failures map[string]int
	examples []string
}

func startTraffic(t testing.TB, addr string, book, long int) *traffic {
	t.Helper()
	tr := &traffic{addr: addr, stop: make(chan struct{}), failures: make(map[string]int)}
	for range book {
		tr.wg.Go(tr.bookClient)
	}
	for range long {
		tr.wg.Go(tr.longClient)
	}
	t.Cleanup(func() { tr.finish() })
	return tr
}

// waitExchanges waits until n more exchanges have succeeded.
func (tr *traffic) waitExchanges(t testing.TB, n int64) {
	t.Helper()
	target := tr.exchanges.Load() + n
	waitFor(t, 10*time.Second, fmt.Sprintf("%d more exchanges", n), func() bool { return tr.exchanges.Load() >= target })
}

// finish stops the clients and returns the failures by kind.
func (tr *traffic) finish() map[string]int {
	select {
	case <-tr.stop:
	default:
		close(tr.stop)
	}
	tr.wg.Wait()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.failures
}

func (tr *traffic) stopped() bool {
	select {
	case <-tr.stop:
		return true
	default:
		return false
	}
}

func (tr *traffic) fail(err error) {
	kind := failureKind(err)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.failures[kind]++
	if len(tr.examples) < 5 {
		tr.examples = append(tr.examples, err.Error())
	}
}

func (tr *traffic) bookClient() {
	for !tr.stopped() {
		c, err := tr.dial()
		if err != nil {
			tr.fail(err)
			continue
		}
		for _, qa := range trafficQuestions {
			if err := exchange(c, qa); err != nil {
				tr.fail(err)
				break
			}
			tr.exchanges.Add(1)
		}
		c.conn.Close()
	}
}

func (tr *traffic) longClient() {
	var c *trafficConn
	for i := 0; !tr.stopped(); i++ {
		if c == nil {
			var err error
			if c, err = tr.dial(); err != nil {
				tr.fail(err)
				continue
			}
		}
		if err := exchange(c, trafficQuestions[i%3]); err != nil {
			tr.fail(err)
			c.conn.Close()
			c = nil
			continue
		}
		tr.exchanges.Add(1)
		time.Sleep(time.Millisecond) // a person types slower than a loop
	}
	if c != nil {
		c.conn.Close()
	}
}

type trafficConn struct {
	conn     net.Conn
	r        *bufio.Reader
	answered bool
}

func (tr *traffic) dial() (*trafficConn, error) {
	conn, err := net.DialTimeout("tcp", tr.addr, 5*time.Second)
	if err != nil {
		if failureKind(err) == "reset" {
			err = fmt.Errorf("%w: %w", errResetUnanswered, err)
		}
		return nil, err
	}
	tr.conns.Add(1)
	return &trafficConn{conn: conn, r: bufio.NewReader(conn)}, nil
}

var trafficQuestions = [][2]string{{qName, aName}, {qQuest, aQuest}, {qColor, aColor}}

var errWrongAnswer = errors.New("wrong answer")

// errResetUnanswered marks a reset before a new connection's first answer:
// a connection still waiting in a listening socket's queue when that
// socket's last copy closes. Only a stop may cause one.
var errResetUnanswered = errors.New("reset before the first answer")

func exchange(c *trafficConn, qa [2]string) error {
	c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.conn.Write([]byte(qa[0])); err != nil {
		if !c.answered && failureKind(err) == "reset" {
			return fmt.Errorf("%w: %w", errResetUnanswered, err)
		}
		return err
	}
	got, err := c.r.ReadString('.')
	if err != nil {
		if !c.answered && failureKind(err) == "reset" {
			return fmt.Errorf("%w: %w", errResetUnanswered, err)
		}
		return err
	}
	if got != qa[1] {
		return fmt.Errorf("%w: %q", errWrongAnswer, got)
	}
	c.answered = true
	return nil
}

func failureKind(err error) string {
	switch {
	case errors.Is(err, errResetUnanswered):
		return "reset_queued"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, io.EOF):
		return "eof"
	case errors.Is(err, errWrongAnswer):
		return "wrong"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	}
	return "other"
}

// requireNoFailures stops the traffic and fails the test on any failure.
func (tr *traffic) requireNoFailures(t testing.TB) {
	t.Helper()
	failures := tr.finish()
	t.Logf("traffic: %d exchanges over %d connections, failures %v", tr.exchanges.Load(), tr.conns.Load(), failures)
	if len(failures) > 0 {
		t.Errorf("failures by kind: %v; examples: %q", failures, tr.examples)
	}
	if tr.exchanges.Load() == 0 {
		t.Errorf("no exchange succeeded")
	}
}
