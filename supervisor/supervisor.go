package supervisor

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/camelot/lancelot/shared/config"
	"github.com/camelot/lancelot/shared/control"
)

// Options configure a Supervisor.
type Options struct {
	// Config is the configuration to start with.
	Config config.Config
	// Reload reads the command line and the config file again, for HUP.
	// Nil disables reloading the configuration (workers are still replaced).
	Reload func() (config.Config, error)
	// Executable is the lancelot binary's path: a binary upgrade starts the
	// file now at this path. Workers run the running binary itself
	// (/proc/self/exe), with this path as their argv[0].
	Executable string
	// Args are the arguments (without argv[0]) a binary upgrade starts the
	// new supervisor with: the command line this one was started with.
	Args []string
	// Env is the environment passed on to workers and upgrades.
	Env []string
	// Inherited are listening sockets passed in by socket activation or by a
	// binary upgrade; when empty, New binds Config.Workers sockets on
	// Config.Listen. New takes ownership of them.
	Inherited []*os.File
	// UpgradeReady is set when this supervisor is the new half of a binary
	// upgrade: one byte written to it tells the old supervisor to retire.
	UpgradeReady *os.File
	// Notify sends a systemd notification (sd_notify); nil sends none.
	Notify func(state string)
	// Watchdog is the interval systemd expects WATCHDOG=1 within; zero is off.
	Watchdog time.Duration
	// Logger receives one line per event that matters.
	Logger *slog.Logger
}

// Timings. Restart backoff is capped at a second because clients queued on
// a crashed worker's socket wait for its replacement: a second keeps them
// well inside any client timeout while a crash loop still costs at most one
// start per second.
const (
	firstBackoff  = 50 * time.Millisecond
	maxBackoff    = time.Second
	stableUptime  = 10 * time.Second // a worker up this long resets its slot's backoff
	readyTimeout  = 15 * time.Second // a new worker or supervisor not ready by then is killed
	quitTimeout   = 2 * time.Second  // QUIT: workers still alive after this are killed
	drainMargin   = 5 * time.Second  // beyond a worker's own drain bound, before SIGKILL
	statsDeadline = time.Second      // a metrics scrape waits this long for each worker
)

// Supervisor owns the listening sockets and the worker processes.
type Supervisor struct {
	opts Options
	log  *slog.Logger

	// Loop state, owned by Run's goroutine.
	cfg        config.Config
	sockets    []*socket
	slots      []*slot
	retiring   map[*worker]time.Time // draining workers and when to kill them
	requests   []os.Signal           // rollout requests waiting for the current one
	rollout    *rollout
	upgrade    *upgrade
	stopping   syscall.Signal // SIGTERM (drain) or SIGQUIT (now) once stopping
	handedOver bool           // a binary upgrade took over: leave pid file and systemd alone
	ready      bool           // every slot served once: the service was announced ready
	wdNext     time.Time

	events  chan event
	signals chan os.Signal
	done    chan struct{}

	metrics metricsState
}

// New binds (or adopts) the listening sockets. Nothing is started until
// Run. New must be called before any other goroutine starts processes.
func New(opts Options) (*Supervisor, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Notify == nil {
		opts.Notify = func(string) {}
	}
	s := &Supervisor{
		opts: opts, log: opts.Logger, cfg: opts.Config,
		retiring: make(map[*worker]time.Time),
		events:   make(chan event, 64),
		signals:  make(chan os.Signal, 16),
		done:     make(chan struct{}),
		metrics:  metricsState{live: make(map[*worker]struct{})},
	}
	if err := s.openSockets(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Supervisor) openSockets() error {
	for _, f := range s.opts.Inherited {
		sock, err := adoptSocket(f)
		if err != nil {
			s.closeSockets()
			return err
		}
		s.sockets = append(s.sockets, sock)
	}
	if len(s.sockets) > 0 {
		return nil
	}
	for i := range s.cfg.Workers {
		sock, err := bindSocket(s.cfg.Listen)
		if err != nil {
			s.closeSockets()
			return fmt.Errorf("listen on %s (slot %d): %w", s.cfg.Listen, i, err)
		}
		s.sockets = append(s.sockets, sock)
	}
	return nil
}

func (s *Supervisor) closeSockets() {
	for _, sock := range s.sockets {
		sock.close()
	}
	s.sockets = nil
}

// Addrs returns the addresses of the listening sockets.
func (s *Supervisor) Addrs() []string {
	addrs := make([]string, len(s.sockets))
	for i, sock := range s.sockets {
		addrs[i] = sock.addr
	}
	return addrs
}

// Signal hands a signal to the running supervisor: TERM and INT drain and
// stop, QUIT stops at once, HUP reloads, USR2 upgrades the binary, TTIN and
// TTOU add and remove a worker. It never blocks once Run has returned.
func (s *Supervisor) Signal(sig os.Signal) {
	select {
	case s.signals <- sig:
	case <-s.done:
	}
}

// Run starts the workers and supervises them until a stop signal, then
// waits for every worker to exit. It returns nil after a requested stop.
func (s *Supervisor) Run() error {
	defer close(s.done)
	defer s.closeSockets()
	s.log.Info("supervisor starting", "pid", os.Getpid(), "workers", s.cfg.Workers, "sockets", len(s.sockets), "listen", s.Addrs())
	if err := s.startSlots(s.cfg.Workers); err != nil {
		s.stop(syscall.SIGQUIT)
		s.waitWorkers()
		return err
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for s.stopping == 0 || s.liveWorkers() > 0 {
		timer.Reset(time.Until(s.nextDeadline()))
		select {
		case ev := <-s.events:
			s.handle(ev)
		case sig := <-s.signals:
			s.handleSignal(sig)
		case <-timer.C:
		}
		s.fireDeadlines(time.Now())
	}
	s.finish()
	return nil
}

// waitWorkers drains events until every started worker has exited; used
// when startup fails half-way.
func (s *Supervisor) waitWorkers() {
	deadline := time.After(quitTimeout + time.Second)
	for s.liveWorkers() > 0 {
		select {
		case ev := <-s.events:
			s.handle(ev)
		case <-deadline:
			s.killAll()
			return
		}
	}
}

// errNoWorkerStarted reports a binary that cannot run as a worker.
var errNoWorkerStarted = errors.New("no worker could be started")

// statsOf is the live worker set and totals of exited ones, for metrics.
type metricsState struct {
	mu       sync.Mutex
	live     map[*worker]struct{}
	retired  control.Stats
	restarts uint64
	serving  int
}
