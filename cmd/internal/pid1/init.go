package pid1

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/shared/handoff"
)

// forwarded are the signals the init passes to the current supervisor: the
// operator's, to the main process only, as `systemctl kill
// --kill-whom=main` and KillMode=mixed's TERM do.
func forwarded() []os.Signal {
	return []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTTIN, syscall.SIGTTOU}
}

// barrierTimeout bounds the wait for the init's own barrier datagram; it
// comes back in microseconds unless the socket is gone.
const barrierTimeout = 2 * time.Second

// maxExits bounds the exits of non-supervisor processes remembered in case
// a late MAINPID= names one of them.
const maxExits = 256

// Options say what the init starts and where it reports.
type Options struct {
	// Executable is the supervisor's binary (this one: os.Executable).
	Executable string
	// Args is its command line, argv[0] first (os.Args).
	Args []string
	// Env is its environment (os.Environ); NOTIFY_SOCKET is replaced by
	// the init's own.
	Env []string
	// Logger logs the init's few events.
	Logger *slog.Logger
	// Notify passes a notification to whoever started the init; nil when
	// nobody listens (no NOTIFY_SOCKET).
	Notify func(state string)
}

// Run is the init: it starts the supervisor and serves as PID 1 until the
// current supervisor exits, and returns that supervisor's exit status (a
// shell's: 128+N for a signal N). An error means the supervisor could not
// be started.
func Run(opts Options) (int, error) {
	signal.Ignore(syscall.SIGPIPE) // the log's reader going away must not end the container
	sock, err := listenNotify()
	if err != nil {
		return 0, err
	}
	defer sock.Close()
	sigc := make(chan os.Signal, 64)
	signal.Notify(sigc, append(forwarded(), syscall.SIGCHLD)...)
	defer signal.Stop(sigc)
	pid, err := start(opts, sock.addr)
	if err != nil {
		return 0, err
	}
	opts.Logger.Info("init: supervisor started", "pid", pid, "notify_socket", sock.addr)
	msgs, done := make(chan message, 16), make(chan struct{})
	defer close(done)
	go sock.read(msgs, done)
	in := &state{opts: opts, sock: sock, current: pid, exits: map[int]int{}}
	return in.loop(sigc, msgs), nil
}

// start starts the supervisor with the operator's signals blocked until
// its runtime can ignore them (handoff.Start). It is never waited for
// through os/exec: the init reaps every child itself.
func start(opts Options, notifyAddr string) (int, error) {
	cmd := exec.Command(opts.Executable)
	cmd.Args = opts.Args
	cmd.Env = childEnv(opts.Env, notifyAddr)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := handoff.Start(cmd); err != nil {
		return 0, fmt.Errorf("start the supervisor: %w", err)
	}
	pid := cmd.Process.Pid
	cmd.Process.Release()
	return pid, nil
}

// childEnv is env with NOTIFY_SOCKET naming the init's socket. The
// watchdog's pid is dropped: the supervisor, not PID 1, sends WATCHDOG=1,
// and the init passes it on.
func childEnv(env []string, notifyAddr string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, "NOTIFY_SOCKET=") && !strings.HasPrefix(kv, "WATCHDOG_PID=") {
			out = append(out, kv)
		}
	}
	return append(out, "NOTIFY_SOCKET="+notifyAddr)
}

// state is the loop's state.
type state struct {
	opts    Options
	sock    *notifySocket
	current int         // the supervisor signals go to
	exits   map[int]int // exit statuses reaped, of processes not current then
	ended   bool        // current has exited, with status; waiting for the barrier
	status  int
	seq     int // the barrier waited for
}

// loop acts on signals and notifications until the current supervisor has
// exited, and returns its status.
func (in *state) loop(sigc <-chan os.Signal, msgs <-chan message) int {
	var barrierDue <-chan time.Time
	for {
		select {
		case sig := <-sigc:
			if sig == syscall.SIGCHLD {
				in.reap()
			} else {
				in.forward(sig.(syscall.Signal))
			}
		case m := <-msgs:
			in.handle(m)
			if in.ended && m.pid == os.Getpid() && m.barrier() == in.seq {
				return in.exit()
			}
		case <-barrierDue:
			in.opts.Logger.Warn("init: no barrier datagram; exiting on the supervisor's exit")
			return in.exit()
		}
		if in.ended && barrierDue == nil {
			in.seq++
			if err := in.sock.sendBarrier(in.seq); err != nil {
				in.opts.Logger.Warn("init", "err", err)
			}
			barrierDue = time.After(barrierTimeout)
		}
		if !in.ended {
			barrierDue = nil
		}
	}
}

// forward passes sig to the current supervisor.
func (in *state) forward(sig syscall.Signal) {
	if err := unix.Kill(in.current, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		in.opts.Logger.Warn("init: forward signal", "signal", sig.String(), "pid", in.current, "err", err)
	}
}

// reap collects every child that has exited; the current supervisor's
// exit ends the init once the barrier is back.
func (in *state) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
		status := exitStatus(ws)
		if pid == in.current {
			in.ended, in.status = true, status
			continue
		}
		if len(in.exits) >= maxExits {
			clear(in.exits)
		}
		in.exits[pid] = status
	}
}

// handle acts on one notification: a MAINPID= from this namespace makes
// its pid the current supervisor; the rest goes up.
func (in *state) handle(m message) {
	if m.pid <= 0 {
		return // from outside this PID namespace: not ours
	}
	if pid := m.mainPID(); pid != 0 && pid != in.current {
		status, gone := in.exits[pid]
		if !gone && unix.Kill(pid, 0) == unix.ESRCH {
			in.opts.Logger.Warn("init: MAINPID= names no process; ignored", "pid", pid, "sender", m.pid)
			return
		}
		in.opts.Logger.Info("init: main supervisor changed", "old_pid", in.current, "pid", pid)
		in.current, in.ended = pid, gone
		in.status = status
	}
	if up := m.upward(); up != "" && in.opts.Notify != nil {
		in.opts.Notify(up)
	}
}

// exit logs the end and returns the status to exit with.
func (in *state) exit() int {
	in.opts.Logger.Info("init: supervisor exited; container ends", "pid", in.current, "status", in.status)
	return in.status
}

// exitStatus is a shell's view of a wait status.
func exitStatus(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
