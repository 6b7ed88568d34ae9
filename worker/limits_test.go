package worker_test

// Tests of what protects a worker: listeners lent and taken back, the
// heartbeat, connection caps, shedding, overload and spread closes.

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/shared/control"
	"github.com/camelot/lancelot/shared/lancelottest"
	"github.com/camelot/lancelot/worker"
)

// startBare starts an engine with no listener; it is closed when the test
// ends.
func startBare(t *testing.T, o worker.Options) *worker.EventLoop {
	t.Helper()
	for _, d := range []*time.Duration{&o.IdleTimeout, &o.ReadTimeout, &o.WriteTimeout} {
		if *d == 0 {
			*d = long
		}
	}
	e := worker.NewEventLoopN(o, 2)
	t.Cleanup(func() { e.Close() })
	return e
}

// TestListenUnlisten: a listener lent under an id is served; taken back,
// it is no longer accepted on — its queue waits for whoever serves it next
// — while connections already accepted stay served.
func TestListenUnlisten(t *testing.T) {
	t.Parallel()
	e := startBare(t, worker.Options{})
	f0, addr0 := lancelottest.ListenerFile(t)
	keep, err := os.Open(os.DevNull) // stands for the supervisor's copy
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	f1, addr1 := lancelottest.ListenerFile(t)
	dup1, err := dupFile(f1)
	if err != nil {
		t.Fatal(err)
	}
	defer dup1.Close()
	if err := e.Listen(0, f0); err != nil {
		t.Fatal(err)
	}
	if err := e.Listen(1, f1); err != nil {
		t.Fatal(err)
	}
	a, b := lancelottest.Dial(t, addr0), lancelottest.Dial(t, addr1)
	a.Ask(lancelottest.QName, lancelottest.AName)
	b.Ask(lancelottest.QName, lancelottest.AName)

	e.Unlisten(1)
	queued := lancelottest.Dial(t, addr1) // the kernel completes the handshake; nobody accepts
	queued.Send(lancelottest.QQuest)
	queued.ExpectOpen(200 * time.Millisecond)
	b.Send(lancelottest.QColor) // accepted before: still served
	b.ExpectAll(lancelottest.AColor)

	other := startBare(t, worker.Options{})
	if err := other.Listen(1, dup1); err != nil {
		t.Fatal(err)
	}
	queued.ExpectAll(lancelottest.AQuest) // the next holder serves the queue
}

// TestRetire: a retired listener's queue is accepted and served before the
// worker lets go of the socket, so closing its last descriptor resets
// nobody; once let go, the address refuses newcomers.
func TestRetire(t *testing.T) {
	t.Parallel()
	e := startBare(t, worker.Options{})
	f, addr := lancelottest.ListenerFile(t)
	again, err := dupFile(f) // the socket outlives Unlisten through it
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Listen(7, f); err != nil {
		t.Fatal(err)
	}
	e.Unlisten(7) // nobody accepts: the clients below queue
	var queued []*lancelottest.Client
	for range 20 {
		c := lancelottest.Dial(t, addr)
		c.Send(lancelottest.QQuest)
		queued = append(queued, c)
	}
	queued[0].ExpectOpen(100 * time.Millisecond)
	if err := e.Listen(7, again); err != nil {
		t.Fatal(err)
	}
	e.Retire(7) // most likely before a loop even took the listener in
	for _, c := range queued {
		c.ExpectAll(lancelottest.AQuest)
	}
	lancelottest.WaitFor(t, 5*time.Second, "the retired socket closed", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return errors.Is(err, unix.ECONNREFUSED)
	})
}

func dupFile(f *os.File) (*os.File, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nf *os.File
	var derr error
	sc.Control(func(fd uintptr) {
		var n int
		n, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
		nf = os.NewFile(uintptr(n), "dup")
	})
	return nf, derr
}

// blockingHandler stands for a log whose reader stalled, written to
// synchronously: a loop that logs through it stops. entered closes when
// the first record arrives.
type blockingHandler struct {
	gate    chan struct{}
	entered chan struct{}
	once    *sync.Once
}

func (h blockingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h blockingHandler) Handle(context.Context, slog.Record) error {
	h.once.Do(func() { close(h.entered) })
	<-h.gate
	return nil
}
func (h blockingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h blockingHandler) WithGroup(string) slog.Handler      { return h }

// TestAliveVouchesForLoops: Alive answers while the loops go around, and
// not while one is stuck (here in a log write), however healthy the rest of
// the process is.
func TestAliveVouchesForLoops(t *testing.T) {
	t.Parallel()
	h := blockingHandler{gate: make(chan struct{}), entered: make(chan struct{}), once: &sync.Once{}}
	gate := h.gate
	e := worker.NewEventLoopN(worker.Options{Logger: slog.New(h), IdleTimeout: long, ReadTimeout: long, WriteTimeout: long}, 1)
	defer func() { close(gate); e.Close() }()
	f, addr := lancelottest.ListenerFile(t)
	if err := e.Listen(0, f); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.Alive(ctx); err != nil {
		t.Fatalf("Alive() of a running loop = %v", err)
	}
	c := lancelottest.Dial(t, addr)
	c.Send("Who?") // the loop logs the close at debug level, and blocks there
	select {
	case <-h.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the loop did not log the close")
	}
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if err := e.Alive(short); err == nil {
		t.Fatal("Alive() = nil while the loop is stuck in a log write")
	}
}

// TestCapShedsSilentForNewcomer: at the cap, a newcomer is admitted by
// closing the connection silent longest among those that never sent a
// byte; with none of those, the newcomer is closed at once.
func TestCapShedsSilentForNewcomer(t *testing.T) {
	t.Parallel()
	withEngines(t, worker.Options{MaxConnections: 3}, func(t *testing.T, s *testEngine) {
		talker := lancelottest.Dial(t, s.addr)
		talker.Ask(lancelottest.QName, lancelottest.AName)
		oldest := lancelottest.Dial(t, s.addr)
		s.waitStatsFunc("2 open", func(st control.Stats) bool { return st.Active == 2 })
		younger := lancelottest.Dial(t, s.addr)
		s.waitStatsFunc("3 open", func(st control.Stats) bool { return st.Active == 3 })

		newcomer := lancelottest.Dial(t, s.addr)
		newcomer.Ask(lancelottest.QQuest, lancelottest.AQuest)
		oldest.ExpectClosed(5 * time.Second)
		younger.Ask(lancelottest.QColor, lancelottest.AColor)
		talker.Ask(lancelottest.QName, lancelottest.AName)

		// Now every connection has spoken: the next newcomer is refused.
		refused := lancelottest.Dial(t, s.addr)
		refused.ExpectClosed(5 * time.Second)
		s.waitStatsFunc("one shed, one limit", func(st control.Stats) bool {
			return st.Closed["shed"] == 1 && st.Closed["limit"] == 1 && st.Active == 3
		})
	})
}

// TestPerSourceCap: one client address may hold a bounded number of
// connections; another address is not affected.
func TestPerSourceCap(t *testing.T) {
	t.Parallel()
	withEngines(t, worker.Options{MaxConnectionsPerSource: 2}, func(t *testing.T, s *testEngine) {
		a, b := lancelottest.DialFrom(t, s.addr, "127.0.0.2"), lancelottest.DialFrom(t, s.addr, "127.0.0.2")
		for _, c := range []*lancelottest.Client{a, b} { // admitted before the third comes
			c.Ask(lancelottest.QName, lancelottest.AName)
		}
		third := lancelottest.DialFrom(t, s.addr, "127.0.0.2")
		third.ExpectClosed(5 * time.Second)
		other := lancelottest.DialFrom(t, s.addr, "127.0.0.3")
		other.Ask(lancelottest.QName, lancelottest.AName)
		a.Conn.Close()
		s.waitStatsFunc("a's slot free", func(st control.Stats) bool { return st.Active == 2 })
		again := lancelottest.DialFrom(t, s.addr, "127.0.0.2")
		again.Ask(lancelottest.QQuest, lancelottest.AQuest)
		s.waitStatsFunc("one limit", func(st control.Stats) bool { return st.Closed["limit"] == 1 })
	})
}

// TestOverloadShrinksIdleTimeout: above nine tenths of the cap, idle
// connections are closed long before their idle timeout.
func TestOverloadShrinksIdleTimeout(t *testing.T) {
	t.Parallel()
	withEngines(t, worker.Options{MaxConnections: 10}, func(t *testing.T, s *testEngine) {
		for range 10 {
			c := lancelottest.Dial(t, s.addr)
			c.Ask(lancelottest.QName, lancelottest.AName)
		}
		start := time.Now()
		s.waitStatsFunc("idle connections shed to below nine tenths of the cap", func(st control.Stats) bool {
			return st.Closed["shed"] >= 1 && st.Active <= 9
		})
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("idle connections at the cap closed after %v; the idle timeout is %v, shrunk it should be about 1s", d, long)
		}
	})
}

// TestShutdownSpreadsCloses: when a shutdown runs out of time, idle
// connections are closed over CloseSpread, not in one instant.
func TestShutdownSpreadsCloses(t *testing.T) {
	t.Parallel()
	const spread = 600 * time.Millisecond
	s := startEngine(t, 0, worker.Options{CloseSpread: spread})
	var clients []*lancelottest.Client
	for range 30 {
		c := lancelottest.Dial(t, s.addr)
		c.Ask(lancelottest.QName, lancelottest.AName)
		clients = append(clients, c)
	}
	done := s.shutdown(10 * time.Millisecond)
	var mu sync.Mutex
	var times []time.Duration
	start := time.Now()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			c.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			c.Conn.Read(make([]byte, 1))
			mu.Lock()
			times = append(times, time.Since(start))
			mu.Unlock()
		})
	}
	wg.Wait()
	waitErr(t, done, 5*time.Second, "Shutdown")
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	first, last := times[0], times[len(times)-1]
	if last-first < spread/3 || last > spread+time.Second {
		t.Errorf("30 idle connections closed between %v and %v; want them spread over about %v", first, last, spread)
	}
}

// TestLogLines: each way a connection ends has its log line, with the
// client's address and the reason.
func TestLogLines(t *testing.T) {
	t.Parallel()
	var buf lancelottest.SyncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	eng := worker.NewEventLoop(worker.Options{Logger: log, MaxQuestionBytes: 40, IdleTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- eng.Serve(ln) }()
	for _, in := range []string{"What is your name?Who?", strings.Repeat("x", 41), "\xff", "What is your name?", ""} {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte(in))
		if in == "What is your name?" {
			conn.Read(make([]byte, 64))
			conn.Close() // EOF
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for _, err := conn.Read(make([]byte, 64)); err == nil; _, err = conn.Read(make([]byte, 64)) {
		}
		conn.Close()
	}
	eng.Close()
	<-served
	got := normalizeLog(buf.String())
	for _, want := range []string{
		`level=DEBUG msg="closing connection: unknown" client=127.0.0.1:PORT peer=127.0.0.1:PORT input=Who?`,
		`level=DEBUG msg="closing connection: oversize" client=127.0.0.1:PORT peer=127.0.0.1:PORT input=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx`,
		`level=DEBUG msg="closing connection: non_ascii" client=127.0.0.1:PORT peer=127.0.0.1:PORT input=\xff`,
		`level=DEBUG msg="connection closed" client=127.0.0.1:PORT peer=127.0.0.1:PORT err=...`,
		`level=DEBUG msg="closing connection: read_timeout" client=127.0.0.1:PORT peer=127.0.0.1:PORT`,
		// The summary: every reason counted, one example.
		`level=INFO msg="connections closed by the server" interval=10s total=4 unknown=1 oversize=1 non_ascii=1 read_timeout=1 example.reason=`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q; log:\n%s", want, got)
		}
	}
}

var (
	logTime   = regexp.MustCompile(`time=\S+ `)
	logRemote = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	logErr    = regexp.MustCompile(` err=.*`)
)

// normalizeLog keeps what a test can rely on: level, message, the presence
// of a remote address and the reason; not the error's wording.
func normalizeLog(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		l = logTime.ReplaceAllString(l, "")
		l = logRemote.ReplaceAllString(l, "127.0.0.1:PORT")
		lines[i] = logErr.ReplaceAllString(l, " err=...")
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// TestWriteTimeoutKernelQueue: a client that never reads is cut after the
// write timeout even when every answer fitted into the kernel's send
// buffer, which autotuning grows to megabytes, so that no write ever
// blocked in the loop: the kernel holds the answers and the client sees a
// closed window. TCP_USER_TIMEOUT, set on the listener, cuts it.
func TestWriteTimeoutKernelQueue(t *testing.T) {
	t.Parallel()
	s := startEngine(t, 0, worker.Options{WriteTimeout: 300 * time.Millisecond})
	for i := range 5 {
		conn := lancelottest.DialConn(t, s.addr)
		conn.(*net.TCPConn).SetReadBuffer(4096) // after the handshake: the window the server saw shrinks
		errc := lancelottest.Flood(conn, lancelottest.QQuest, 20*time.Second)
		select {
		case err := <-errc:
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("try %d: never-reading client not cut within 20 s", i)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("try %d: writer stuck", i)
		}
		conn.Close()
	}
	s.waitStatsFunc("5 write timeouts", func(st control.Stats) bool { return st.Closed["write_timeout"] == 5 })
}
