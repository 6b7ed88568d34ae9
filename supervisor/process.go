package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/shared/control"
	"github.com/camelot/lancelot/shared/handoff"
)

// sendTimeout bounds a message to a worker: a full channel means the
// worker stopped reading for a while.
const sendTimeout = 100 * time.Millisecond

// maxStatsInFlight bounds the stats requests a worker has not answered
// yet. A unix packet socket queues only net.unix.max_dgram_qlen (10)
// messages, not the hundreds its byte buffer could hold.
const maxStatsInFlight = 2

// workerProcess is a real worker process. Two goroutines report on it: one
// reads its control channel, one reaps it.
type workerProcess struct {
	cmd  *exec.Cmd
	ctrl *control.Conn
	// readDone closes when the control channel reached EOF, so the final
	// stats a worker sends before exiting are counted before its exit is.
	readDone chan struct{}

	mu      sync.Mutex
	stats   control.Stats
	seq     uint64
	waiters map[uint64]chan control.Stats
}

// startWorkerProcess starts the process for w; its events about w reach
// the loop through o.report. Call it only from the loop goroutine (see the
// package doc).
func startWorkerProcess(o envOptions, w *worker, spec workerSpec) (*workerProcess, error) {
	ctrl, remote, err := control.Pair()
	if err != nil {
		return nil, err
	}
	defer remote.Close()
	h := handoff.Worker{Slot: spec.slot, Config: spec.config, Control: remote}
	defer func() {
		for _, sock := range h.Sockets {
			sock.File.Close()
		}
	}()
	for _, sock := range spec.sockets {
		f, err := sock.file()
		if err != nil {
			ctrl.Close()
			return nil, err
		}
		h.Sockets = append(h.Sockets, handoff.Socket{ID: sock.id, File: f})
	}
	cmd, err := h.Command(o.executable, o.env)
	if err != nil {
		ctrl.Close()
		return nil, err
	}
	defer cmd.ExtraFiles[1].Close() // the configuration: the worker has its own copy once started
	cmd.Stdout, cmd.Stderr = o.stdout, o.stderr
	if err := handoff.Start(cmd); err != nil {
		ctrl.Close()
		return nil, fmt.Errorf("start worker for slot %d: %w", spec.slot, err)
	}
	p := &workerProcess{cmd: cmd, ctrl: ctrl, readDone: make(chan struct{}), waiters: make(map[uint64]chan control.Stats)}
	go p.readControl(o.report, w)
	go p.wait(o.report, w)
	return p, nil
}

func (p *workerProcess) pid() int { return p.cmd.Process.Pid }

// signal sends sig; a worker that already exited is reported by its exit
// event, so the error is of no use here.
func (p *workerProcess) signal(sig syscall.Signal) {
	_ = p.cmd.Process.Signal(sig)
}

func (p *workerProcess) send(m control.Message) error {
	return p.ctrl.SendWithin(m, sendTimeout)
}

// readControl turns the worker's messages into events until EOF.
func (p *workerProcess) readControl(report func(event), w *worker) {
	defer close(p.readDone)
	for {
		m, err := p.ctrl.Receive()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				report(event{kind: eventControlError, worker: w, err: err})
			}
			return
		}
		switch m.Type {
		case control.TypeReady:
			report(event{kind: eventReady, worker: w, version: m.Version})
		case control.TypeAlive:
			report(event{kind: eventAlive, worker: w, seq: m.Seq})
		case control.TypeStats:
			if m.Stats != nil {
				p.recordStats(m.Seq, *m.Stats)
			}
		}
	}
}

// wait reaps the process and reports its exit once its last stats are in.
func (p *workerProcess) wait(report func(event), w *worker) {
	err := p.cmd.Wait()
	select {
	case <-p.readDone:
	case <-time.After(time.Second):
	}
	p.ctrl.Close()
	report(event{kind: eventExited, worker: w, err: err})
}

func (p *workerProcess) recordStats(seq uint64, st control.Stats) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats = st
	if c, ok := p.waiters[seq]; ok {
		c <- st
		delete(p.waiters, seq)
	}
}

// fetchStats asks the worker for its counters and waits for the reply, or
// returns the last known ones when ctx ends first.
func (p *workerProcess) fetchStats(ctx context.Context) control.Stats {
	p.mu.Lock()
	if len(p.waiters) >= maxStatsInFlight {
		// The worker has not answered those yet: more requests would
		// only fill its channel (see sendTimeout), so status polled in
		// a loop does not crowd out its heartbeats.
		defer p.mu.Unlock()
		return p.stats
	}
	p.seq++
	seq := p.seq
	c := make(chan control.Stats, 1)
	p.waiters[seq] = c
	p.mu.Unlock()
	if err := p.ctrl.SendWithin(control.Message{Type: control.TypeStatsRequest, Seq: seq}, sendTimeout); err == nil {
		select {
		case st := <-c:
			return st
		case <-ctx.Done():
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.waiters, seq)
	return p.stats
}

func (p *workerProcess) lastStats() control.Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// killedBy is the signal that ended a process, or 0.
func killedBy(err error) syscall.Signal {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ws.Signal()
		}
	}
	return 0
}

// exitStatus describes how a process ended, for the log.
func exitStatus(err error) string {
	if sig := killedBy(err); sig != 0 {
		return "killed by " + unix.SignalName(sig)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return "exit status " + strconv.Itoa(ee.ExitCode())
	}
	if err != nil {
		return err.Error()
	}
	return "exit status 0"
}

// pidfd is a process handle that cannot be confused with a later process
// that got the same pid.
type pidfd struct {
	mu sync.Mutex
	fd int
}

func openPidfd(pid int) *pidfd {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil // gone already
	}
	return &pidfd{fd: fd}
}

func (p *pidfd) kill() {
	p.signal(unix.SIGKILL)
}

func (p *pidfd) signal(sig syscall.Signal) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fd >= 0 {
		unix.PidfdSendSignal(p.fd, sig, nil, 0)
	}
}

func (p *pidfd) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fd >= 0 {
		unix.Close(p.fd)
		p.fd = -1
	}
}
