package worker

// White-box tests of the event loop's parts; its behaviour as an Engine is
// tested with the other engines' (server_test.go, eventloop_behaviour_test.go).

import (
	"context"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestTimerHeap(t *testing.T) {
	var h timerHeap
	live := map[*elConn]bool{}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		switch op := rng.IntN(4); {
		case op < 2 || len(live) == 0:
			c := &elConn{}
			h.push(c, rng.Int64N(1000))
			live[c] = true
		case op == 2:
			c := h[rng.IntN(len(h))]
			h.fix(c, rng.Int64N(1000))
		default:
			c := h[rng.IntN(len(h))]
			h.remove(c)
			delete(live, c)
			if c.hidx != -1 {
				t.Fatalf("step %d: removed connection keeps index %d", i, c.hidx)
			}
		}
		checkHeap(t, h, len(live))
	}
}

func checkHeap(t *testing.T, h timerHeap, n int) {
	t.Helper()
	if len(h) != n {
		t.Fatalf("heap holds %d, want %d", len(h), n)
	}
	for i, c := range h {
		if int(c.hidx) != i {
			t.Fatalf("h[%d].hidx = %d", i, c.hidx)
		}
		if i > 0 && h[(i-1)/2].due > c.due {
			t.Fatalf("h[%d].due = %d below its parent's %d", i, c.due, h[(i-1)/2].due)
		}
	}
}

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

// TestAcceptOutOfDescriptors: when accept fails for want of descriptors
// the loop neither spins nor gives up: the queued clients are served once
// descriptors are free again. It lowers the open-files limit, so it runs
// in a child process.
func TestAcceptOutOfDescriptors(t *testing.T) {
	outOfDescriptors(t, "^TestAcceptOutOfDescriptors$", false)
}

// TestSweepOutOfDescriptors: a stop that finds the queue it must sweep
// but no descriptor to accept with keeps the listener and sweeps again
// once descriptors are free: the queued clients are served, not reset.
func TestSweepOutOfDescriptors(t *testing.T) {
	outOfDescriptors(t, "^TestSweepOutOfDescriptors$", true)
}

// outOfDescriptors runs acceptOutOfDescriptors in a child process, since
// it lowers the open-files limit.
func outOfDescriptors(t *testing.T, run string, stop bool) {
	if os.Getenv("EVENTLOOP_EMFILE_CHILD") == "1" {
		acceptOutOfDescriptors(t, stop)
		return
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run="+run, "-test.v")
	cmd.Env = append(os.Environ(), "EVENTLOOP_EMFILE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func acceptOutOfDescriptors(t *testing.T, stop bool) {
	e := NewEventLoopN(Options{}, 1)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	served := make(chan error, 1)
	go func() { served <- e.Serve(ln) }()
	defer func() { e.Close(); <-served }()
	// One exchange first: the loop is up, its descriptors open.
	first, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	first.Write([]byte("What is your name?"))
	first.Read(make([]byte, 64))
	first.Close()
	for e.Stats().Active != 0 {
		time.Sleep(time.Millisecond)
	}
	// Fill every descriptor below a low limit, then free room for 10
	// client sockets and 4 accepted connections.
	var rl unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &rl)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 100, Max: rl.Max}); err != nil {
		t.Fatal(err)
	}
	defer unix.Setrlimit(unix.RLIMIT_NOFILE, &rl)
	var filler []int
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		filler = append(filler, fd)
	}
	for _, fd := range filler[len(filler)-14:] {
		unix.Close(fd)
	}
	filler = filler[:len(filler)-14]
	clients := make([]int, 10)
	for i := range clients {
		if clients[i], err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
			t.Fatal(err)
		}
		defer unix.Close(clients[i])
		unix.SetsockoptTimeval(clients[i], unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5})
	}
	// Connected only now: the server accepts while they connect.
	for i := range clients {
		if err := unix.Connect(clients[i], &unix.SockaddrInet4{Port: addr.Port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
		unix.Write(clients[i], []byte("What is your name?"))
	}
	before := cpuTime(t)
	time.Sleep(300 * time.Millisecond)
	if used := cpuTime(t) - before; used > 100*time.Millisecond {
		t.Errorf("%v of CPU in 300ms while out of descriptors: the loop spins", used)
	}
	if st := e.Stats(); st.Accepted != 1+4 {
		t.Errorf("accepted %d of 10 clients with room for 4", st.Accepted-1)
	}
	if stop {
		// A stop now must sweep the 6 queued, and cannot yet.
		go e.Shutdown(context.Background())
		time.Sleep(50 * time.Millisecond)
	}
	for _, fd := range filler {
		unix.Close(fd)
	}
	for i, fd := range clients {
		buf := make([]byte, 64)
		n, err := unix.Read(fd, buf)
		if err != nil || string(buf[:n]) != "My name is Sir Lancelot of Camelot." {
			t.Errorf("client %d: %q, %v", i, buf[:n], err)
		}
	}
}

func cpuTime(t *testing.T) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
