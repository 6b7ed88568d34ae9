package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/camelot/lancelot/shared/config"
	"github.com/camelot/lancelot/shared/control"
)

// worker is one worker process as the supervisor sees it. Its fields below
// mu are shared with the goroutines that read its control channel and
// answer metrics scrapes; the rest belong to the supervisor's loop.
type worker struct {
	slot    int
	pid     int
	cmd     *exec.Cmd
	ctrl    *control.Conn
	started time.Time
	ready   bool
	// draining is set once the worker was told to stop.
	draining bool
	// readDone closes when the control channel reached EOF, so the final
	// stats a worker sends before exiting are counted before its exit is.
	readDone chan struct{}

	mu      sync.Mutex
	stats   control.Stats
	seq     uint64
	waiters map[uint64]chan control.Stats
}

// spawnSpec is what a new worker process gets.
type spawnSpec struct {
	executable string
	slot       int
	sockets    []*socket
	config     config.Config
	env        []string
}

// startWorker starts a worker process. Call it only from the loop goroutine.
func startWorker(spec spawnSpec) (*worker, error) {
	ctrl, remote, err := control.Pair()
	if err != nil {
		return nil, err
	}
	defer remote.Close()
	files := []*os.File{remote}
	defer func() {
		for _, f := range files[1:] {
			f.Close()
		}
	}()
	for _, s := range spec.sockets {
		f, err := s.file()
		if err != nil {
			ctrl.Close()
			return nil, err
		}
		files = append(files, f)
	}
	cfgJSON, err := json.Marshal(spec.config)
	if err != nil {
		ctrl.Close()
		return nil, fmt.Errorf("encode worker config: %w", err)
	}
	// Workers run this very binary, even after a new one replaced it on
	// disk: /proc/self/exe still names the running executable's inode, so a
	// supervisor never restarts its workers from a different version.
	cmd := exec.Command("/proc/self/exe", "worker")
	cmd.Args[0] = spec.executable
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.ExtraFiles = files // fd 3 = control, fd 4.. = sockets
	cmd.Env = append(workerEnv(spec.env),
		control.EnvConfig+"="+string(cfgJSON),
		control.EnvListeners+"="+strconv.Itoa(len(spec.sockets)),
		control.EnvSlot+"="+strconv.Itoa(spec.slot),
	)
	if err := cmd.Start(); err != nil {
		ctrl.Close()
		return nil, fmt.Errorf("start worker for slot %d: %w", spec.slot, err)
	}
	return &worker{
		slot: spec.slot, pid: cmd.Process.Pid, cmd: cmd, ctrl: ctrl, started: time.Now(),
		readDone: make(chan struct{}), waiters: make(map[uint64]chan control.Stats),
	}, nil
}

// workerEnv drops what must reach the supervisor only: systemd's variables
// (every notification comes from the supervisor) and our own handover ones.
// Other LANCELOT_ variables (LANCELOT_ENGINE) pass through.
func workerEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if strings.HasPrefix(kv, "NOTIFY_SOCKET=") || strings.HasPrefix(kv, "LISTEN_") ||
			strings.HasPrefix(kv, "WATCHDOG_") || strings.HasPrefix(kv, "LANCELOT_UPGRADE") ||
			strings.HasPrefix(kv, control.EnvConfig+"=") || strings.HasPrefix(kv, control.EnvListeners+"=") ||
			strings.HasPrefix(kv, control.EnvSlot+"=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// readControl turns the worker's messages into events until EOF.
func (w *worker) readControl(events chan<- event) {
	defer close(w.readDone)
	for {
		m, err := w.ctrl.Receive()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				events <- event{worker: w, err: err}
			}
			return
		}
		switch m.Type {
		case control.TypeReady:
			events <- event{kind: eventReady, worker: w}
		case control.TypeStats:
			if m.Stats != nil {
				w.recordStats(m.Seq, *m.Stats)
			}
		}
	}
}

// wait reaps the process and reports its exit once its last stats are in.
func (w *worker) wait(events chan<- event) {
	err := w.cmd.Wait()
	select {
	case <-w.readDone:
	case <-time.After(time.Second):
	}
	w.ctrl.Close()
	events <- event{kind: eventExited, worker: w, err: err}
}

func (w *worker) recordStats(seq uint64, s control.Stats) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stats = s
	if c, ok := w.waiters[seq]; ok {
		c <- s
		delete(w.waiters, seq)
	}
}

// fetchStats asks the worker for its counters and waits for the reply, or
// returns the last known ones when ctx ends first.
func (w *worker) fetchStats(ctx context.Context) control.Stats {
	w.mu.Lock()
	w.seq++
	seq := w.seq
	c := make(chan control.Stats, 1)
	w.waiters[seq] = c
	w.mu.Unlock()
	if err := w.ctrl.Send(control.Message{Type: control.TypeStatsRequest, Seq: seq}); err == nil {
		select {
		case s := <-c:
			return s
		case <-ctx.Done():
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.waiters, seq)
	return w.stats
}

func (w *worker) lastStats() control.Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// signal sends sig; a worker that already exited is reported by its exit
// event, so the error is of no use here.
func (w *worker) signal(sig syscall.Signal) {
	_ = w.cmd.Process.Signal(sig)
}

// exitStatus describes how a process ended, for the log.
func exitStatus(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by " + ws.Signal().String()
		}
		return "exit status " + strconv.Itoa(ee.ExitCode())
	}
	if err != nil {
		return err.Error()
	}
	return "exit status 0"
}
