package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/camelot/lancelot/cmd/internal/proc"
	"github.com/camelot/lancelot/shared/lancelottest"
)

// Connections outlive processes: a reload, a scale-down and a scale-up
// move open connections between workers at a question boundary, and the
// replaced workers exit at once instead of draining for
// --shutdown-timeout (30 s by default, which every test here keeps).

// goneWithin is how soon the processes an operation replaced must be gone.
const goneWithin = 3 * time.Second

// cycler is a set of clients that each keep one connection and ask the
// book's three questions in turn, one every period, until stopped: a
// lost answer times out, a reordered or repeated one does not match, and
// a close by the server ends the client.
type cycler struct {
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	asked  int
	wrong  []string // answers that did not match their question
	closed []error  // how the server ended a connection
	conns  []net.Conn
}

func startCycler(t *testing.T, addr string, n int, period time.Duration) *cycler {
	t.Helper()
	cy := &cycler{stop: make(chan struct{})}
	for range n {
		c := lancelottest.DialConn(t, addr)
		if _, err := lancelottest.AskOn(c, lancelottest.QQuest); err != nil {
			t.Fatalf("first question: %v", err)
		}
		cy.conns = append(cy.conns, c)
	}
	for i, c := range cy.conns {
		cy.wg.Go(func() { cy.ask(c, i, period) })
	}
	t.Cleanup(cy.halt)
	return cy
}

func (cy *cycler) ask(c net.Conn, i int, period time.Duration) {
	ex := lancelottest.Exchanges()
	tick := time.NewTicker(period)
	defer tick.Stop()
	for k := i; ; k++ {
		select {
		case <-cy.stop:
			return
		case <-tick.C:
		}
		q, want := ex[k%3][0], ex[k%3][1]
		a, err := lancelottest.AskOn(c, q)
		cy.mu.Lock()
		cy.asked++
		switch {
		case err != nil && a == "" && (errors.Is(err, io.EOF) || lancelottest.IsReset(err)):
			cy.closed = append(cy.closed, err)
		case err != nil:
			cy.wrong = append(cy.wrong, fmt.Sprintf("%q: %q then %v", q, a, err))
		case a != want:
			cy.wrong = append(cy.wrong, fmt.Sprintf("%q: %q", q, a))
		}
		cy.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (cy *cycler) halt() {
	select {
	case <-cy.stop:
	default:
		close(cy.stop)
	}
	cy.wg.Wait()
}

// waitAsked waits until n more questions were asked.
func (cy *cycler) waitAsked(t *testing.T, n int) {
	t.Helper()
	cy.mu.Lock()
	want := cy.asked + n
	cy.mu.Unlock()
	lancelottest.WaitFor(t, 20*time.Second, fmt.Sprintf("%d more questions", n), func() bool {
		cy.mu.Lock()
		defer cy.mu.Unlock()
		return cy.asked >= want || len(cy.wrong)+len(cy.closed) > 0 // requireNoErrors says why
	})
}

func (cy *cycler) counts() (wrong []string, closed int) {
	cy.mu.Lock()
	defer cy.mu.Unlock()
	return append([]string(nil), cy.wrong...), len(cy.closed)
}

// requireAnswered fails on any answer lost or out of place.
func (cy *cycler) requireAnswered(t *testing.T) {
	t.Helper()
	if wrong, _ := cy.counts(); len(wrong) > 0 {
		t.Fatalf("%d answers lost or out of place; first: %s", len(wrong), wrong[0])
	}
}

// requireNoErrors fails on any answer lost or out of place, and on any
// connection the server closed.
func (cy *cycler) requireNoErrors(t *testing.T) {
	t.Helper()
	cy.requireAnswered(t)
	if _, closed := cy.counts(); closed > 0 {
		t.Fatalf("%d of %d connections closed by the server; first: %v", closed, len(cy.conns), cy.closed[0])
	}
}

// requireGone fails unless every pid in pids has exited within goneWithin.
func requireGone(t *testing.T, what string, pids []int) {
	t.Helper()
	start := time.Now()
	if !lancelottest.Poll(goneWithin, func() bool { return !anyAlive(pids) }) {
		t.Fatalf("%s: replaced workers %v still running %v later (want gone within %v)", what, pids, time.Since(start).Round(time.Millisecond), goneWithin)
	}
	t.Logf("%s: replaced workers gone %v after the operation completed", what, time.Since(start).Round(time.Millisecond))
}

// TestHandoverPersistentClients: clients that keep their connection see
// no close through a reload, a scale-down and a scale-up, and the
// processes each operation replaced are gone within 3 s.
func TestHandoverPersistentClients(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, "--workers", "2")
	p := startCycler(t, s.addr, 40, 50*time.Millisecond)
	p.waitAsked(t, 100)

	before := s.servingPIDs()
	s.signal(syscall.SIGHUP)
	s.waitHandled("HUP", 1)
	requireGone(t, "HUP", before)
	p.waitAsked(t, 100)

	before = s.servingPIDs()
	s.signal(syscall.SIGTTOU)
	st := s.waitHandled("TTOU", 1)
	requireGone(t, "TTOU", []int{before[1]})
	if got := slotPIDs(st); len(got) != 1 || got[0] != before[0] {
		t.Fatalf("after TTOU the slots are %v, want [%d]", got, before[0])
	}
	p.waitAsked(t, 100)

	s.signal(syscall.SIGTTIN)
	st = s.waitHandled("TTIN", 1)
	p.waitAsked(t, 100)
	newPID := slotPIDs(st)[1]
	s.waitFor(5*time.Second, "the new worker got a share of the connections", func() bool {
		return strings.Contains(s.logs.String(), "reason=rebalance handed_over=")
	})
	if n := established(t, s.port, newPID); n < 10 {
		t.Errorf("after TTIN the new worker holds %d of 40 connections, want a fair share", n)
	}
	p.waitAsked(t, 100)
	p.halt()
	p.requireNoErrors(t)
}

// established counts the established connections to port that process
// pid holds, from ss.
func established(t *testing.T, port, pid int) int {
	t.Helper()
	n := 0
	for _, p := range holders(t, port) {
		if p == pid {
			n++
		}
	}
	return n
}

// holders maps the client port of every established connection to port
// to the pid of the process holding it, from ss.
func holders(t *testing.T, port int) map[int]int {
	t.Helper()
	out, err := exec.Command("ss", "-Htnp", "state", "established", fmt.Sprintf("sport = :%d", port)).Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	m := make(map[int]int)
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		_, pidText, ok := strings.Cut(line, "pid=")
		if len(f) < 4 || !ok {
			continue
		}
		_, peerPort, _ := strings.Cut(f[3], "]:")
		if peerPort == "" {
			peerPort = f[3][strings.LastIndex(f[3], ":")+1:]
		}
		cp, _ := strconv.Atoi(peerPort)
		pid, _ := strconv.Atoi(pidText[:strings.IndexAny(pidText, ",)")])
		m[cp] = pid
	}
	return m
}

// TestHandoverSplitQuestion: a question begun before a reload ends after
// it, on the new worker, once the old one is gone.
func TestHandoverSplitQuestion(t *testing.T) {
	s := startServer(t, "--workers", "1")
	c := lancelottest.Dial(t, s.addr)
	c.Ask(lancelottest.QName, lancelottest.AName)
	c.Send("What is your")
	before := s.servingPIDs()
	s.signal(syscall.SIGHUP)
	s.waitHandled("HUP", 1)
	requireGone(t, "HUP", before)
	c.Send(" quest?")
	c.Expect(lancelottest.AQuest)
	c.Ask(lancelottest.QColor, lancelottest.AColor)
}

// TestHandoverPipelinedSlowReader: 20,000 pipelined questions, read
// slowly across three reloads, are all answered, in order; then the
// replaced workers are gone though the connection stays open.
func TestHandoverPipelinedSlowReader(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, "--workers", "1")
	conn := lancelottest.DialConn(t, s.addr)
	const n = 20000
	qs := []string{lancelottest.QName, lancelottest.QQuest, lancelottest.QColor}
	as := []string{lancelottest.AName, lancelottest.AQuest, lancelottest.AColor}
	go func() {
		var b strings.Builder
		for i := range n {
			b.WriteString(qs[i%3])
		}
		conn.Write([]byte(b.String()))
	}()
	first := s.servingPIDs()
	reloads := make(chan []int, 1)
	go func() {
		var replaced []int
		for i := range 3 {
			replaced = append(replaced, s.servingPIDsNoFail()...)
			syscall.Kill(s.cmd.Process.Pid, syscall.SIGHUP)
			lancelottest.Poll(10*time.Second, func() bool {
				st, err := statusOf(s.pidFile)
				return err == nil && st.Signals["HUP"] >= uint64(i+1) && settled(st)
			})
		}
		reloads <- replaced
	}()
	r := bufio.NewReaderSize(conn, 512)
	conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	for i := range n {
		a, err := r.ReadString('.')
		if err != nil {
			t.Fatalf("answer %d: %v (read %q)", i, err, a)
		}
		if a != as[i%3] {
			t.Fatalf("answer %d = %q, want %q", i, a, as[i%3])
		}
		if i%200 == 0 {
			time.Sleep(10 * time.Millisecond) // a slow reader: about 2 s in all
		}
	}
	replaced := <-reloads
	if len(replaced) < 3 || replaced[0] != first[0] {
		t.Fatalf("reloads replaced %v", replaced)
	}
	requireGone(t, "three HUPs", replaced)
	if a, err := lancelottest.AskOn(conn, lancelottest.QColor); err != nil || a != lancelottest.AColor {
		t.Fatalf("after the reloads: %q, %v", a, err)
	}
}

// servingPIDsNoFail is servingPIDs for a goroutine other than the test's.
func (s *server) servingPIDsNoFail() []int {
	st, err := statusOf(s.pidFile)
	if err != nil {
		return nil
	}
	var out []int
	for _, sl := range st.Slots {
		if sl.Ready && proc.Alive(sl.PID) {
			out = append(out, sl.PID)
		}
	}
	return out
}

// TestHandoverKeepsProxyAddress: the client a PROXY v1 header named is
// still the one the new worker's log names after a reload.
func TestHandoverKeepsProxyAddress(t *testing.T) {
	s := startServer(t, "--workers", "1", "--log-level", "debug",
		"--proxy-protocol", "v1", "--proxy-allow-from", "127.0.0.1/32")
	c := lancelottest.Dial(t, s.addr)
	c.Send("PROXY TCP4 192.0.2.9 192.0.2.10 5555 1060\r\n")
	c.Ask(lancelottest.QName, lancelottest.AName)
	before := s.servingPIDs()
	s.signal(syscall.SIGHUP)
	st := s.waitHandled("HUP", 1)
	requireGone(t, "HUP", before)
	c.Ask(lancelottest.QQuest, lancelottest.AQuest)
	c.Send("What is your airspeed?")
	c.ExpectClosed(5 * time.Second)
	s.waitFor(5*time.Second, "the new worker's log names the PROXY client", func() bool {
		return logHas(s.logs.String(), slotPIDs(st)[0], "client=192.0.2.9:5555")
	})
}

// logHas reports whether a line of process pid's contains what.
func logHas(logs string, pid int, what string) bool {
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "pid="+strconv.Itoa(pid)+" ") && strings.Contains(line, what) {
			return true
		}
	}
	return false
}

// TestHandoverHalfClosedClient: a client that pipelines 1,000 questions,
// shuts down its writing side and reads slowly across a reload gets every
// answer, then EOF.
func TestHandoverHalfClosedClient(t *testing.T) {
	s := startServer(t, "--workers", "1")
	conn := lancelottest.DialConn(t, s.addr)
	const n = 1000
	if _, err := conn.Write([]byte(strings.Repeat(lancelottest.QQuest, n))); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	s.signal(syscall.SIGHUP)
	r := bufio.NewReaderSize(conn, 256)
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for i := range n {
		a, err := r.ReadString('.')
		if err != nil || a != lancelottest.AQuest {
			t.Fatalf("answer %d = %q, %v", i, a, err)
		}
		if i%100 == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if b, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("after every answer: %q, %v; want EOF", b, err)
	}
	s.waitHandled("HUP", 1)
}

// TestHandoverScaleDownAtCap: a TTOU whose surviving worker is near its
// connection cap fills it up to where it would start shedding idle
// connections (nine tenths of the cap) and no further; the connections
// that do not fit stay with the retired worker, served.
func TestHandoverScaleDownAtCap(t *testing.T) {
	const limit, dialed, fill = 10, 14, 9
	s := startServer(t, "--workers", "2", "--max-connections", strconv.Itoa(limit))
	pids := slotPIDs(s.waitQuiet())
	var conns []net.Conn
	for tries := 0; len(conns) < dialed && tries < 200; tries++ {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lancelottest.AskOn(c, lancelottest.QName); err != nil {
			c.Close() // refused at a worker's cap: another source port
			continue
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	if len(conns) < dialed {
		t.Fatalf("only %d connections admitted", len(conns))
	}
	// The survivor must have room for some, not all, of the other's.
	held := holders(t, s.port)
	kept := conns[:0]
	onSurvivor := established(t, s.port, pids[0])
	for _, c := range conns {
		if onSurvivor > fill-2 && held[c.LocalAddr().(*net.TCPAddr).Port] == pids[0] {
			c.Close()
			onSurvivor--
			continue
		}
		kept = append(kept, c)
	}
	conns = kept
	total := len(conns)
	if total <= fill {
		t.Fatalf("%d connections left, want more than %d", total, fill)
	}
	// The survivor counts a closed connection against its cap until it
	// has read the close: on a busy machine that can come after the TTOU.
	s.waitFor(5*time.Second, "the survivor closed its side of the closed connections", func() bool {
		out, err := exec.Command("ss", "-Htn", "state", "close-wait", fmt.Sprintf("sport = :%d", s.port)).Output()
		return err == nil && len(strings.TrimSpace(string(out))) == 0
	})
	s.signal(syscall.SIGTTOU)
	s.waitHandled("TTOU", 1)
	s.waitFor(5*time.Second, "the scale-down handover logged", func() bool {
		return strings.Contains(s.logs.String(), "reason=scale_down")
	})
	for i, c := range conns {
		if a, err := lancelottest.AskOn(c, lancelottest.QColor); err != nil || a != lancelottest.AColor {
			t.Fatalf("connection %d after TTOU: %q, %v", i, a, err)
		}
	}
	if n := established(t, s.port, pids[0]); n != fill {
		t.Errorf("the survivor holds %d connections, want %d: nine tenths of its cap %d, filled, not exceeded", n, fill, limit)
	}
	if n := established(t, s.port, pids[1]); n != total-fill || !proc.Alive(pids[1]) {
		t.Errorf("the retired worker holds %d connections, want the %d that did not fit", n, total-fill)
	}
	if logs := s.logs.String(); strings.Contains(logs, "shed=") {
		t.Errorf("connections were shed after the handover")
	}
}

// TestHandoverReceiverKilled: when the receiver of a scale-down handover
// stops answering and is SIGKILLed, the connections in flight are closed
// and counted, the others are served, and handed to the receiver's
// replacement once it is ready, so the sender exits; nothing hangs.
func TestHandoverReceiverKilled(t *testing.T) {
	maddr := fmt.Sprintf("127.0.0.1:%d", lancelottest.FreePort(t))
	s := startServer(t, "--workers", "2", "--metrics", maddr)
	pids := slotPIDs(s.waitQuiet())
	var conns []net.Conn
	for len(conns) < 300 {
		c := lancelottest.DialConn(t, s.addr)
		if _, err := lancelottest.AskOn(c, lancelottest.QName); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	held := holders(t, s.port)
	// The receiver stops before it can read its end of the channel: the
	// first batch is never acknowledged.
	if err := syscall.Kill(pids[0], syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	s.waitFor(5*time.Second, "the receiver stopped", func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pids[0]))
		_, rest, _ := strings.Cut(string(b), ") ")
		return strings.HasPrefix(rest, "T")
	})
	s.signal(syscall.SIGTTOU)
	s.waitFor(10*time.Second, "the sender gives the batch up", func() bool {
		return strings.Contains(s.logs.String(), "handover failed; closing the connections in flight")
	})
	syscall.Kill(pids[0], syscall.SIGKILL)
	s.waitHandled("TTOU", 1)
	closed, served, killed := 0, 0, 0
	for i, c := range conns {
		a, err := lancelottest.AskOn(c, lancelottest.QColor)
		switch {
		case held[c.LocalAddr().(*net.TCPAddr).Port] == pids[0]:
			killed++ // the receiver's own connections die with it
			if err == nil {
				t.Errorf("connection %d of the killed worker answered %q", i, a)
			}
		case err == nil && a == lancelottest.AColor:
			served++
		case errors.Is(err, io.EOF) || lancelottest.IsReset(err):
			closed++
		default:
			t.Fatalf("connection %d: %q, %v (want an answer or a close, at once)", i, a, err)
		}
	}
	failures := metricValue(t, maddr, "lancelot_handover_failures_total")
	t.Logf("sender's connections: closed %d, served %d; failures counted %v; the killed receiver's own: %d", closed, served, failures, killed)
	if closed == 0 || closed > 64 || float64(closed) != failures {
		t.Errorf("closed %d connections, counted %v failures: want the one batch in flight (1..64), each counted", closed, failures)
	}
	if served == 0 {
		t.Errorf("no connection served after the failed handover")
	}
	// The rest go to the killed receiver's replacement once it is ready,
	// and the sender exits: not at --shutdown-timeout (30 s).
	requireGone(t, "the sender whose receiver was killed", []int{pids[1]})
	lancelottest.DialConn(t, s.addr).Close()
	if a, err := lancelottest.AskOnce(s.addr, lancelottest.QQuest, 5*time.Second); err != nil || a != lancelottest.AQuest {
		t.Errorf("a new client after the failure: %q, %v", a, err)
	}
}

// TestHandoverOffDrains: with --handover off a reload drains as 0.3.0
// did: the old worker keeps its open connection and serves it.
func TestHandoverOffDrains(t *testing.T) {
	s := startServer(t, "--workers", "1", "--handover", "off")
	c := lancelottest.Dial(t, s.addr)
	c.Ask(lancelottest.QName, lancelottest.AName)
	before := s.servingPIDs()
	s.signal(syscall.SIGHUP)
	s.waitHandled("HUP", 1)
	if lancelottest.Poll(goneWithin, func() bool { return !anyAlive(before) }) {
		t.Fatalf("the old worker %v exited with a client still connected; want it draining", before)
	}
	if established(t, s.port, before[0]) != 1 {
		t.Errorf("the old worker %d does not hold the connection", before[0])
	}
	c.Ask(lancelottest.QQuest, lancelottest.AQuest)
	if strings.Contains(s.logs.String(), "handover started") {
		t.Errorf("a handover started with --handover off")
	}
}

// TestHandoverScaleUpThenDown: a TTOU right behind a TTIN or a HUP
// retires a worker that may still be receiving: the others' share of
// their connections (TTIN), or its predecessor's (HUP). What is in flight
// to it is refused and stays with its sender, which then hands it to a
// survivor, so no client sees a close. The new worker used to exit with a
// rebalance batch unanswered, and its sender closed the connections in
// it; a reload's predecessor kept what was refused and closed it at
// --shutdown-timeout.
func TestHandoverScaleUpThenDown(t *testing.T) {
	skipIfShort(t)
	s := startServer(t, "--workers", "2", "--shutdown-timeout", "3s")
	p := startCycler(t, s.addr, 200, 200*time.Millisecond)
	p.waitAsked(t, 400)
	for i := range 3 {
		s.signal(syscall.SIGTTIN)
		s.signal(syscall.SIGTTOU)
		s.waitHandled("TTOU", uint64(2*i+1))
		p.waitAsked(t, 200)
		s.signal(syscall.SIGHUP)
		s.signal(syscall.SIGTTOU)
		s.signal(syscall.SIGTTIN)
		s.waitHandled("TTOU", uint64(2*i+2))
		s.waitHandled("TTIN", uint64(2*i+2))
		p.waitAsked(t, 200)
	}
	// Past the shutdown timeout of the last retired worker: what it kept
	// would be closed by now.
	s.waitFor(10*time.Second, "the retired workers gone", func() bool {
		return len(s.status().Retiring) == 0
	})
	p.waitAsked(t, 400)
	p.halt()
	p.requireNoErrors(t)
	for _, bad := range []string{"failed_closed=", "shutdown timeout passed"} {
		if n := strings.Count(s.logs.String(), bad); n > 0 {
			t.Errorf("%d log lines with %q: connections were closed, not handed over", n, bad)
		}
	}
}
