package main

// The protocol as docs/protocol.md states it, against the real binary.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/lancelottest"
)

// protoStep is one write and the answers it must bring.
type protoStep struct {
	send string
	want string        // every answer owed after this write, concatenated
	open time.Duration // then the connection must stay open and silent this long
}

// TestProtocol runs docs/protocol.md's cases, each on its own
// connection to one shared server.
func TestProtocol(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--workers", "2", "--idle-timeout", "10s", "--read-timeout", "10s",
		"--write-timeout", "10s", "--shutdown-timeout", "1s")
	var pipelined, pipelinedAnswers strings.Builder
	for i := range 300 {
		qa := lancelottest.Exchanges()[i%3]
		pipelined.WriteString(qa[0])
		pipelinedAnswers.WriteString(qa[1])
	}
	for _, tc := range []struct {
		name   string
		steps  []protoStep
		split  bool // write every byte on its own
		closed bool // then the server closes the connection
	}{
		// Served
		{name: "three questions in turn", steps: []protoStep{
			{send: lancelottest.QName, want: lancelottest.AName}, {send: lancelottest.QQuest, want: lancelottest.AQuest}, {send: lancelottest.QColor, want: lancelottest.AColor}}},
		{name: "same question again", steps: []protoStep{
			{send: lancelottest.QColor, want: lancelottest.AColor}, {send: lancelottest.QColor, want: lancelottest.AColor}}},
		{name: "three pipelined in one write", steps: []protoStep{
			{send: lancelottest.QName + lancelottest.QQuest + lancelottest.QColor, want: lancelottest.AName + lancelottest.AQuest + lancelottest.AColor}}},
		{name: "300 pipelined in one write", steps: []protoStep{
			{send: pipelined.String(), want: pipelinedAnswers.String()}}},
		{name: "split byte by byte", split: true, steps: []protoStep{
			{send: lancelottest.QName + lancelottest.QQuest, want: lancelottest.AName + lancelottest.AQuest}}},
		{name: "split across writes", steps: []protoStep{
			{send: "What is your", open: 100 * time.Millisecond},
			{send: " favorite", open: 50 * time.Millisecond},
			{send: " color?" + lancelottest.QName + "What", want: lancelottest.AColor + lancelottest.AName},
			{send: " is your quest?", want: lancelottest.AQuest}}},
		{name: "leading whitespace", steps: []protoStep{
			{send: " " + lancelottest.QName, want: lancelottest.AName},
			{send: "\t" + lancelottest.QQuest, want: lancelottest.AQuest},
			{send: "\r" + lancelottest.QColor, want: lancelottest.AColor},
			{send: "\n" + lancelottest.QName, want: lancelottest.AName},
			{send: " \t\r\n \r\n\t" + lancelottest.QQuest, want: lancelottest.AQuest}}},
		{name: "lines as nc sends them", steps: []protoStep{
			{send: lancelottest.QName + "\n", want: lancelottest.AName},
			{send: lancelottest.QQuest + "\r\n", want: lancelottest.AQuest},
			{send: "\r\n", open: 50 * time.Millisecond},
			{send: lancelottest.QColor + "\n", want: lancelottest.AColor}}},
		{name: "whitespace split from its question", split: true, steps: []protoStep{
			{send: " \r\n\t" + lancelottest.QName + "\r\n", want: lancelottest.AName}}},
		{name: "1024 bytes without ? are not too many", steps: []protoStep{
			{send: strings.Repeat("x", 1024), open: 200 * time.Millisecond},
			{send: "?"}}, closed: true}, // too long to be known, not to be read

		// Closed
		{name: "unknown question", closed: true, steps: []protoStep{
			{send: "What is the capital of Assyria?"}}},
		{name: "unknown after answers", closed: true, steps: []protoStep{
			{send: lancelottest.QName, want: lancelottest.AName},
			{send: lancelottest.QQuest + "What is your age?" + lancelottest.QColor, want: lancelottest.AQuest}}},
		{name: "case matters", closed: true, steps: []protoStep{
			{send: "what is your name?"}}},
		{name: "inner whitespace matters", closed: true, steps: []protoStep{
			{send: "What is  your name?"}}},
		{name: "bare ?", closed: true, steps: []protoStep{
			{send: "?"}}},
		{name: "non-ASCII", closed: true, steps: []protoStep{
			{send: "What is your n\xc3\xa6me?"}}},
		{name: "non-ASCII without ?", closed: true, steps: []protoStep{
			{send: lancelottest.QName + "\xff", want: lancelottest.AName}}},
		{name: "more than 1024 bytes without ?", closed: true, steps: []protoStep{
			{send: strings.Repeat("x", 1025)}}},
		{name: "more than 1024 bytes after an answer", closed: true, steps: []protoStep{
			{send: lancelottest.QName + strings.Repeat("What is your name", 100), want: lancelottest.AName}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := lancelottest.Dial(t, s.addr)
			for _, ex := range tc.steps {
				if tc.split {
					for _, b := range []byte(ex.send) {
						c.Send(string(b))
						time.Sleep(time.Millisecond) // nothing to wait for: spread the bytes out
					}
				} else {
					c.Send(ex.send)
				}
				c.ExpectAll(ex.want)
				if ex.open > 0 {
					c.ExpectOpen(ex.open)
				}
			}
			if !tc.closed {
				c.Send(lancelottest.QName)
				c.Expect(lancelottest.AName)
				return
			}
			// Closed at once, not by a timeout (all 10 s here).
			c.ExpectClosed(5 * time.Second)
			// The server goes on serving everyone else.
			other := lancelottest.Dial(t, s.addr)
			other.Send(lancelottest.QQuest)
			other.Expect(lancelottest.AQuest)
		})
	}
}

// TestMaxQuestionBytesFlag: with a limit equal to the longest question,
// every question is served and one byte more without a '?' is cut.
func TestMaxQuestionBytesFlag(t *testing.T) {
	t.Parallel()
	longest := len(lancelottest.QColor)
	s := startServer(t, "--workers", "1", "--max-question-bytes", "28", "--read-timeout", "10s", "--shutdown-timeout", "1s")
	if longest != 28 {
		t.Fatalf("longest question is %d bytes, test assumes 28", longest)
	}
	c := lancelottest.Dial(t, s.addr)
	c.Send(lancelottest.QColor + " \r\n" + lancelottest.QName + lancelottest.QQuest)
	c.ExpectAll(lancelottest.AColor + lancelottest.AName + lancelottest.AQuest)
	c.Send(strings.Repeat("x", 28))
	c.ExpectOpen(200 * time.Millisecond)

	over := lancelottest.Dial(t, s.addr)
	over.Send(lancelottest.QName)
	over.Expect(lancelottest.AName)
	over.Send(strings.Repeat("x", 29))
	over.ExpectClosed(5 * time.Second)
}

func TestIdleTimeoutFlag(t *testing.T) {
	t.Parallel()
	const idle = 300 * time.Millisecond
	s := startServer(t, "--workers", "1", "--idle-timeout", "300ms", "--read-timeout", "10s", "--shutdown-timeout", "1s")
	// A client that never sends, and one that goes quiet after an answer.
	silent, quiet := lancelottest.DialConn(t, s.addr), lancelottest.DialConn(t, s.addr)
	if got, err := lancelottest.AskOn(quiet, lancelottest.QName); err != nil || got != lancelottest.AName {
		t.Fatalf("answer = %q, %v; want %q", got, err, lancelottest.AName)
	}
	var wg sync.WaitGroup
	for name, conn := range map[string]net.Conn{"silent": silent, "quiet after an answer": quiet} {
		wg.Go(func() {
			start := time.Now()
			if err := lancelottest.ReadUntilClosed(conn, 5*time.Second); err != nil {
				t.Errorf("%s client: %v; want closed after about %v", name, err, idle)
				return
			}
			if d := time.Since(start); d < idle/2 {
				t.Errorf("%s client closed after %v, want about %v", name, d, idle)
			}
		})
	}
	// Questions closer together than the idle timeout keep a connection
	// open longer than the timeout.
	c := lancelottest.Dial(t, s.addr)
	start := time.Now()
	for time.Since(start) < 2*idle {
		c.Send(lancelottest.QName)
		c.Expect(lancelottest.AName)
		time.Sleep(idle / 3) // the client's pause under test
	}
	wg.Wait()
}

func TestReadTimeoutFlag(t *testing.T) {
	t.Parallel()
	const readTimeout = 300 * time.Millisecond
	s := startServer(t, "--workers", "1", "--read-timeout", "300ms", "--idle-timeout", "10s", "--shutdown-timeout", "1s")
	c := lancelottest.Dial(t, s.addr)
	c.Send(lancelottest.QName)
	c.Expect(lancelottest.AName)
	c.Send("What is your")
	c.ExpectClosedAfter(readTimeout)
	// The read timeout bounds the whole question, not each read.
	trickle := lancelottest.Dial(t, s.addr)
	start := time.Now()
	lancelottest.Trickle(trickle.Conn, lancelottest.QColor, 40*time.Millisecond)
	trickle.ExpectClosed(5 * time.Second)
	if d := time.Since(start); d < readTimeout/2 {
		t.Errorf("trickling client cut after %v, want about %v", d, readTimeout)
	}
}

// TestTimeoutFlagsApart: --idle-timeout does not cut a started question,
// and --read-timeout does not cut a connection idle between questions.
func TestTimeoutFlagsApart(t *testing.T) {
	t.Parallel()
	t.Run("idle timeout mid-question", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, "--workers", "1", "--idle-timeout", "200ms", "--read-timeout", "10s", "--shutdown-timeout", "1s")
		c := lancelottest.Dial(t, s.addr)
		c.Send("What is your")
		c.ExpectOpen(600 * time.Millisecond)
		c.Send(" name?")
		c.Expect(lancelottest.AName)
	})
	t.Run("read timeout between questions", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, "--workers", "1", "--idle-timeout", "10s", "--read-timeout", "200ms", "--shutdown-timeout", "1s")
		c := lancelottest.Dial(t, s.addr)
		c.Send(lancelottest.QName)
		c.Expect(lancelottest.AName)
		c.ExpectOpen(600 * time.Millisecond)
		c.Send(lancelottest.QQuest)
		c.Expect(lancelottest.AQuest)
	})
}

// TestWriteTimeoutFlag: a client that pipelines questions and never reads
// the answers is cut after --write-timeout; the worker does not hang and
// serves others meanwhile and after.
func TestWriteTimeoutFlag(t *testing.T) {
	t.Parallel()
	metrics := fmt.Sprintf("127.0.0.1:%d", lancelottest.FreePort(t))
	s := startServer(t, "--workers", "1", "--write-timeout", "300ms", "--shutdown-timeout", "1s", "--metrics", metrics)
	conn := lancelottest.DialConn(t, s.addr)
	if tc, ok := conn.(interface{ SetReadBuffer(int) error }); ok {
		tc.SetReadBuffer(4096) // fill the window sooner
	}
	errc := lancelottest.Flood(conn, lancelottest.QQuest, 20*time.Second)
	other := lancelottest.Dial(t, s.addr)
	other.Send(lancelottest.QName)
	other.Expect(lancelottest.AName)
	lancelottest.ExpectCut(t, conn, errc, 15*time.Second)
	// Cut for the write timeout, not for another reason.
	lancelottest.WaitFor(t, 5*time.Second, "the cut counted as write_timeout", func() bool {
		return metricValue(t, metrics, `lancelot_connections_closed_total{reason="write_timeout"}`) == 1
	})
	other.Send(lancelottest.QColor)
	other.Expect(lancelottest.AColor)
	if got, err := lancelottest.AskOnce(s.addr, lancelottest.QQuest, 5*time.Second); err != nil || got != lancelottest.AQuest {
		t.Errorf("new client after the cut: %q, %v", got, err)
	}
}

// TestManyHeldQuestions: 300 clients each holding an unfinished question do
// not delay a new client.
func TestManyHeldQuestions(t *testing.T) {
	t.Parallel()
	const holders = 300
	s := startServer(t, "--workers", "2", "--read-timeout", "20s", "--shutdown-timeout", "1s")
	workers := s.workerPIDs()
	before := 0
	for _, pid := range workers {
		before += len(socketInodes(pid))
	}
	conns := make([]*lancelottest.Client, holders)
	for i := range conns {
		conns[i] = lancelottest.Dial(t, s.addr)
		conns[i].Send("What is your")
	}
	// Every one was accepted: the workers hold 300 more sockets.
	s.waitFor(10*time.Second, "300 connections accepted by the workers", func() bool {
		n := 0
		for _, pid := range workers {
			n += len(socketInodes(pid))
		}
		return n-before >= holders
	})
	start := time.Now()
	c := lancelottest.Dial(t, s.addr)
	c.Send(lancelottest.QName)
	c.Expect(lancelottest.AName)
	if d := time.Since(start); d > time.Second {
		t.Errorf("new client answered after %v with %d questions held, want under 1s", d, holders)
	}
	// And every held question is answered once it completes.
	lancelottest.AskAll(t, conns, " quest?", lancelottest.AQuest)
}

// TestConfigAnswers: the config file's answers: replace the built-in table.
func TestConfigAnswers(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "lancelot.yaml")
	const (
		qSwallow = "What is the air-speed velocity of an unladen swallow?"
		aSwallow = "What do you mean, an African or European swallow?"
	)
	yaml := "answers:\n" +
		"  \"What is your name?\": \"It is Arthur, King of the Britons.\"\n" +
		"  \"" + qSwallow + "\": \"" + aSwallow + ".\"\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--workers", "1", "--config", cfg, "--shutdown-timeout", "1s")
	c := lancelottest.Dial(t, s.addr)
	c.Send(lancelottest.QName + qSwallow)
	c.ExpectAll("It is Arthur, King of the Britons." + aSwallow + ".")
	// The built-in table is gone, not merged.
	c.Send(lancelottest.QQuest)
	c.ExpectClosed(5 * time.Second)
}
