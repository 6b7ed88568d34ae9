package worker

import (
	"context"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

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
