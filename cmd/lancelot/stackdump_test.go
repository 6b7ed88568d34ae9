package main

// A hung worker's death leaves a trace: before the SIGKILL, the supervisor
// asks it for every goroutine's stack (supervisor/heartbeat.go). These
// tests hang real workers (loopfreeze_test.go) and read what reaches the
// log.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/shared/lancelottest"
)

// TestResilienceHungWorkerDumpsStacks: a worker whose event loops hang while
// its Go runtime runs on misses its heartbeat; the supervisor asks it for
// every goroutine's stack (SIGABRT), which reaches the log (the worker's
// stderr, the supervisor's), the hung loop among them, and says so in its
// own line; the worker exits by itself, within the grace, and is replaced.
// The loops hang for real: their threads are stopped by ptrace in their
// epoll_wait (see loopfreeze_test.go). (0.3.0 before this rule: SIGKILLed without a trace.)
func TestResilienceHungWorkerDumpsStacks(t *testing.T) {
	const timeout = time.Second
	maddr := "127.0.0.1:" + strconv.Itoa(lancelottest.FreePort(t))
	s := startServer(t, "--workers", "2", "--worker-timeout", timeout.String(), "--metrics", maddr)
	hung := slotWorkers(t, s)[0].pid
	t.Cleanup(func() { killIfOurs(hung) })
	loops := freezeLoops(t, hung, s.port)
	frozen := time.Now()
	t.Logf("stopped %d event loop thread(s) of worker %d", len(loops.tids), hung)
	// Its loops' threads die only with the process, which writes its
	// stacks before it exits.
	if !loops.waitExit(timeout + stackDumpGrace + 3*time.Second) {
		t.Fatalf("worker %d still alive %v after its loops stopped", hung, time.Since(frozen).Round(time.Millisecond))
	}
	died := time.Since(frozen)
	var replaced time.Duration
	s.waitFor(10*time.Second, "a new ready worker in slot 0", func() bool {
		w := slotWorkers(t, s)[0]
		replaced = time.Since(frozen)
		return w.pid != 0 && w.pid != hung && w.ready
	})
	logs := s.logs.String()
	dump := logs[max(0, strings.Index(logs, "SIGABRT: abort")):]
	goroutines := strings.Count(dump, "\ngoroutine ")
	t.Logf("hung worker: dead %v after its loops stopped, replaced after %v; %d goroutine stacks in the log",
		died.Round(time.Millisecond), replaced.Round(time.Millisecond), goroutines)
	if !strings.Contains(logs, "SIGABRT: abort") || goroutines < 2 {
		t.Errorf("no goroutine dump in the log (%d goroutine headers)", goroutines)
	}
	// The hung loop is among them, waiting in the syscall it was stopped in.
	if !slices.ContainsFunc(strings.Split(dump, "\ngoroutine "), func(g string) bool {
		header, _, _ := strings.Cut(g, "\n")
		return strings.Contains(header, "[syscall") && strings.Contains(g, "worker.(*loop).run(")
	}) {
		t.Errorf("the dump shows no event loop in its syscall")
	}
	for _, want := range []string{
		fmt.Sprintf(`msg="worker missed its heartbeat; asked for a stack dump, killing it (its sockets are lent meanwhile)" slot=0 pid=%d`, hung),
		`stack_dump="SIGABRT: every goroutine's stack on the worker's stderr (the journal under systemd)"`,
		fmt.Sprintf(`pid=%d status="exit status 2"`, hung), // the runtime's exit after a dump
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log has no %q", want)
		}
	}
	if strings.Contains(logs, "hung worker still alive after its stack dump grace") {
		t.Errorf("the worker needed the SIGKILL after the grace, though its runtime ran")
	}
	if bound := timeout + stackDumpGrace + time.Second; died > bound {
		t.Errorf("hung worker died %v after its loops stopped, want within %v", died, bound)
	}
	if n := scrape(t, maddr)["lancelot_worker_stack_dumps_total"]; n != 1 {
		t.Errorf("lancelot_worker_stack_dumps_total = %v, want 1", n)
	}
	requireEverySocketServed(t, mustStatus(t, s.pidFile))
}

// TestResilienceHungWorkerBlockedStderr: a hung worker that cannot write
// its stacks, its stderr a pipe nobody reads, is SIGKILLed at the end of
// the dump's grace regardless, within --worker-timeout + the grace + 1 s.
// Its loops hang as in TestResilienceHungWorkerDumpsStacks; the test fills
// the pipe first, then reads it again once the worker is dead.
func TestResilienceHungWorkerBlockedStderr(t *testing.T) {
	const timeout = time.Second
	stderr := newPipeLog(t)
	wrapper := []string{"sh", "-c", `exec "$@" 2>` + stderr.path, "sh"}
	s := launchServerVia(t, wrapper, []string{"serve", "--listen", "", "--pid-file", "", "--workers", "2",
		"--worker-timeout", timeout.String()}, nil)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server stderr:\n%s", stderr.String())
		}
	})
	s.waitReady()
	hung := slotWorkers(t, s)[0].pid
	t.Cleanup(func() { killIfOurs(hung) })
	stderr.stopReading()
	filled := stderr.fill()
	loops := freezeLoops(t, hung, s.port)
	frozen := time.Now()
	ok := loops.waitExit(timeout + stackDumpGrace + 3*time.Second)
	died := time.Since(frozen)
	stderr.startReading()
	if !ok {
		t.Fatalf("worker %d still alive %v after its loops stopped, its stderr full", hung, died.Round(time.Millisecond))
	}
	s.waitFor(10*time.Second, "a new ready worker in slot 0", func() bool {
		w := slotWorkers(t, s)[0]
		return w.pid != 0 && w.pid != hung && w.ready
	})
	var logs string
	killed := fmt.Sprintf(`pid=%d status="killed by SIGKILL"`, hung)
	lancelottest.Poll(5*time.Second, func() bool { logs = stderr.String(); return strings.Contains(logs, killed) })
	t.Logf("hung worker, stderr full (%d bytes written to fill it): dead %v after its loops stopped", filled, died.Round(time.Millisecond))
	for _, want := range []string{
		fmt.Sprintf(`asked for a stack dump, killing it (its sockets are lent meanwhile)" slot=0 pid=%d`, hung),
		fmt.Sprintf(`hung worker still alive after its stack dump grace; killing it" slot=0 pid=%d`, hung),
		killed,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log has no %q", want)
		}
	}
	if bound := timeout + stackDumpGrace + time.Second; died > bound {
		t.Errorf("hung worker with a blocked stderr died %v after its loops stopped, want within %v", died, bound)
	}
	requireEverySocketServed(t, mustStatus(t, s.pidFile))
}

// pipeLog is a server's stderr as a named pipe the test reads, and can stop
// reading: then the pipe fills and writers block, as under a stalled
// journald.
type pipeLog struct {
	path string
	f    *os.File
	quit chan struct{}
	done chan struct{}

	mu      sync.Mutex
	changed *sync.Cond
	buf     bytes.Buffer
	paused  bool // asked to stop reading
	idle    bool // not reading: paused, and the last read is over
}

// newPipeLog makes the pipe and reads it until the test ends. Call it
// before the server starts: its cleanup then runs after the server's, so
// the server never writes to a pipe without a reader.
func newPipeLog(t *testing.T) *pipeLog {
	t.Helper()
	p := &pipeLog{path: filepath.Join(t.TempDir(), "stderr"), quit: make(chan struct{}), done: make(chan struct{})}
	p.changed = sync.NewCond(&p.mu)
	if err := unix.Mkfifo(p.path, 0o600); err != nil {
		t.Fatal(err)
	}
	// Non-blocking: the open does not wait for a writer, and reads go
	// through the runtime's poller, so a deadline ends them.
	f, err := os.OpenFile(p.path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	p.f = f
	go p.read()
	t.Cleanup(func() {
		close(p.quit)
		p.startReading()
		<-p.done
		p.f.Close()
	})
	return p
}

// read copies the pipe into buf, except while paused. Before a writer
// opened the pipe, and after the last one closed it, a read returns EOF at
// once: then it looks again a little later.
func (p *pipeLog) read() {
	defer close(p.done)
	b := make([]byte, 64<<10)
	for {
		p.mu.Lock()
		for p.paused {
			p.idle = true
			p.changed.Broadcast()
			p.changed.Wait()
		}
		p.idle = false
		p.mu.Unlock()
		select {
		case <-p.quit:
			return
		default:
		}
		p.f.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		n, err := p.f.Read(b)
		p.mu.Lock()
		p.buf.Write(b[:n])
		p.mu.Unlock()
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			time.Sleep(5 * time.Millisecond) // EOF: no writer now
		}
	}
}

// stopReading returns once the pipe is read no more.
func (p *pipeLog) stopReading() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = true
	for !p.idle {
		p.changed.Wait()
	}
}

func (p *pipeLog) startReading() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = false
	p.changed.Broadcast()
}

// fill writes newlines into the pipe until it is full, through a
// descriptor of its own (non-blocking, unlike the server's), and returns
// how many it wrote.
func (p *pipeLog) fill() int {
	fd, err := unix.Open(p.path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	nl := bytes.Repeat([]byte("\n"), 4096)
	total := 0
	for {
		n, err := unix.Write(fd, nl)
		total += max(n, 0)
		if err != nil {
			return total
		}
	}
}

// String is what was read so far.
func (p *pipeLog) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}
