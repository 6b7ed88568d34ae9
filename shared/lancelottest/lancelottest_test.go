package lancelottest_test

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/camelot/lancelot/shared/lancelottest"
	"github.com/camelot/lancelot/shared/protocol"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestExchangesAreTheTable: the constants are the default table's.
func TestExchangesAreTheTable(t *testing.T) {
	table := protocol.DefaultAnswers()
	for _, qa := range lancelottest.Exchanges() {
		if got := table[qa[0]]; got != qa[1] {
			t.Errorf("default table answers %q with %q, the constants with %q", qa[0], got, qa[1])
		}
	}
	if len(table) != len(lancelottest.Exchanges()) {
		t.Errorf("default table has %d questions, the constants 3", len(table))
	}
}

// echoServer answers each connection's input with its reply and then, if
// hangUp, closes it; it stops when the test ends.
func echoServer(t *testing.T, reply string, hangUp bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := conn.Read(make([]byte, 512)); err != nil {
					return
				}
				conn.Write([]byte(reply))
				if !hangUp {
					conn.Read(make([]byte, 1)) // until the client leaves
				}
			})
		}
	})
	return ln.Addr().String()
}

func TestClient(t *testing.T) {
	addr := echoServer(t, lancelottest.AName+lancelottest.AQuest, true)
	c := lancelottest.Dial(t, addr)
	c.Send(lancelottest.QName + lancelottest.QQuest)
	c.Expect(lancelottest.AName) // up to the first '.'
	c.ExpectAll(lancelottest.AQuest)
	c.ExpectClosed(5 * time.Second)

	quiet := lancelottest.DialFrom(t, echoServer(t, lancelottest.AColor, false), "127.0.0.2")
	quiet.Send(lancelottest.QColor)
	quiet.ExpectAll(lancelottest.AColor)
	quiet.ExpectOpen(50 * time.Millisecond)
}

func TestExchanges(t *testing.T) {
	addr := echoServer(t, lancelottest.AColor, true)
	if got, err := lancelottest.AskOnce(addr, lancelottest.QColor, 5*time.Second); err != nil || got != lancelottest.AColor {
		t.Errorf("AskOnce = %q, %v; want %q", got, err, lancelottest.AColor)
	}
	got, took, err := lancelottest.AskFrom(addr, "127.0.0.3", lancelottest.QColor, 5*time.Second)
	if err != nil || got != lancelottest.AColor || took <= 0 {
		t.Errorf("AskFrom = %q, %v, %v; want %q", got, took, err, lancelottest.AColor)
	}
	conn := lancelottest.DialConn(t, addr)
	if got, err := lancelottest.AskOn(conn, lancelottest.QColor); err != nil || got != lancelottest.AColor {
		t.Errorf("AskOn = %q, %v; want %q", got, err, lancelottest.AColor)
	}
	if err := lancelottest.ReadUntilClosed(conn, 5*time.Second); err != nil {
		t.Errorf("ReadUntilClosed after the server hung up: %v", err)
	}
	talker := lancelottest.DialConn(t, echoServer(t, "Unasked.", true))
	talker.Write([]byte("?"))
	if err := lancelottest.ReadUntilClosed(talker, 5*time.Second); err == nil || !strings.Contains(err.Error(), "Unasked.") {
		t.Errorf("ReadUntilClosed of a connection that sent bytes = %v, want an error naming them", err)
	}
}

func TestListenerFile(t *testing.T) {
	f, addr := lancelottest.ListenerFile(t)
	ln, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ln.Addr().String() != addr {
		t.Errorf("listener on %s, want %s", ln.Addr(), addr)
	}
	if port := lancelottest.FreePort(t); port <= 0 {
		t.Errorf("FreePort = %d", port)
	}
}

func TestPoll(t *testing.T) {
	n := 0
	if !lancelottest.Poll(time.Second, func() bool { n++; return n == 3 }) {
		t.Error("Poll gave up on a condition that came true")
	}
	start := time.Now()
	if lancelottest.Poll(20*time.Millisecond, func() bool { return false }) || time.Since(start) < 20*time.Millisecond {
		t.Errorf("Poll of a condition never true: true, or false after %v only", time.Since(start))
	}
	lancelottest.WaitFor(t, time.Second, "a true condition", func() bool { return true })
}
