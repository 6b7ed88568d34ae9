package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/camelot/lancelot/shared/config"
	"github.com/camelot/lancelot/shared/handoff"
)

// Options configure a Supervisor.
type Options struct {
	// Config is the configuration to start with; Config.Workers is the
	// configured worker count.
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
	// Activated are listening sockets passed by socket activation; when
	// there are none and Upgrade is nil, New binds its own on
	// Config.Listen. New takes ownership of them.
	Activated []*os.File
	// Upgrade is set when this supervisor is a binary upgrade's successor:
	// it takes the old supervisor's sockets and worker counts, and tells it
	// once ready. New takes ownership of its files.
	Upgrade *handoff.Upgrade
	// Notify sends a systemd notification (sd_notify); nil sends none.
	Notify func(state string)
	// Watchdog is the interval systemd expects WATCHDOG=1 within; zero is off.
	Watchdog time.Duration
	// Logger receives one line per event that matters.
	Logger *slog.Logger
	// Stdout and Stderr are the workers' and the successor's; nil are
	// this process's.
	Stdout, Stderr *os.File
}

// Timings. Restart backoff protects the machine from a crash loop, not the
// clients: a crashed worker's sockets are lent to another worker at once
// (and with no worker left to lend them to, see scheduleRestart).
const (
	firstBackoff  = 50 * time.Millisecond
	maxBackoff    = time.Second
	stableUptime  = 10 * time.Second // a worker up this long resets its slot's backoff
	readyTimeout  = 15 * time.Second // a new worker not ready by then is killed (a successor: handoff.TimeoutReady)
	quitTimeout   = 2 * time.Second  // QUIT: workers still alive after this are killed
	drainMargin   = 5 * time.Second  // beyond a worker's own drain bound, before SIGKILL
	statsDeadline = time.Second      // a metrics scrape waits this long for each worker
)

// Supervisor owns the listening sockets and the worker processes.
type Supervisor struct {
	opts Options
	env  env
	log  *slog.Logger

	// Loop state, owned by Run's goroutine (see the package doc).
	cfg config.Config
	// running is the worker count the signals asked for: the configured
	// count, moved by TTIN and TTOU. Rollouts bring the slots to it; one
	// that failed half-way leaves it for the next rollout to reach.
	running int
	sockets []*socket // in the order they were opened
	// nextSocketID is the id the next socket gets (see addSocket).
	nextSocketID int
	slots        []*slot
	workers      map[*worker]struct{} // every worker not yet reaped
	requests     []request            // rollout requests waiting for the current one
	rollout      *rollout
	upgrade      *upgrade
	// upgradeWaiting holds a USR2 that came during a rollout (see
	// deferUpgrade): its replies, and whether one is waiting.
	upgradeWaiting []chan error
	upgradeDue     bool
	stopping       syscall.Signal // SIGTERM (drain) or SIGQUIT (now) once stopping
	// lameDuckUntil is when a stop with a drain delay begins; zero unless
	// TERM arrived with --drain-delay set.
	lameDuckUntil time.Time
	// convergeAt is when the slots try again to reach the running count,
	// after a rollout that could not (see abortRollout); zero if not due.
	convergeAt      time.Time
	convergeBackoff time.Duration
	// handedOver: a binary upgrade took over; leave the pid file and
	// systemd to the successor.
	handedOver bool
	// link is, in a successor, the channel to the predecessor until it
	// took over; awaitingVerdict while the predecessor decides;
	// awaitingRequests from then until it passed its waiting requests on.
	link             predecessorLink
	awaitingVerdict  bool
	awaitingRequests bool
	// exitErr is what Run returns after a stop that was not asked for.
	exitErr  error
	ready    bool // every slot served once: the service was announced ready
	wdNext   time.Time
	hb       heartbeats
	received map[string]uint64 // signals (and Reload calls) by name, for Status

	// lendRetryAt is when a lend that failed for want of descriptors is
	// tried again, if nothing else happens before; zero if none failed.
	lendRetryAt time.Time

	events   chan event
	requestc chan request
	done     chan struct{}

	metrics metricsState
}

// New binds (or adopts) the listening sockets. Nothing is started until
// Run. New must be called before any other goroutine starts processes.
func New(opts Options) (*Supervisor, error) {
	s := newSupervisor(opts)
	s.env = stdEnv(envOptions{
		executable: opts.Executable, args: opts.Args, env: opts.Env,
		stdout: s.opts.Stdout, stderr: s.opts.Stderr, report: s.send, log: s.log,
	})
	if opts.Upgrade != nil {
		s.link = &handoffLink{u: opts.Upgrade, report: s.send}
	}
	if err := s.openSockets(); err != nil {
		return nil, err
	}
	return s, nil
}

// newSupervisor fills in the defaults; New and the model test add the env.
func newSupervisor(opts Options) *Supervisor {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Notify == nil {
		opts.Notify = func(string) {}
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	return &Supervisor{
		opts: opts, log: opts.Logger, cfg: opts.Config,
		workers:  make(map[*worker]struct{}),
		received: make(map[string]uint64),
		events:   make(chan event, 64),
		requestc: make(chan request, 16),
		done:     make(chan struct{}),
		metrics:  metricsState{live: make(map[*worker]struct{})},
	}
}

// openSockets adopts the inherited sockets, or binds, for every configured
// address, one socket per worker of its own, every one on the port the
// first one got (--listen HOST:0). A successor keeps its predecessor's
// addresses, as it keeps its counts: an edited listen setting is applied
// by the next reload.
func (s *Supervisor) openSockets() error {
	inherited, activated := s.inherited()
	for i, f := range inherited {
		sock, err := adoptSocket(f)
		if err != nil {
			s.closeSockets()
			return err
		}
		sock.activated = activated[i]
		s.addSocket(sock)
	}
	if len(s.sockets) > 0 {
		s.noteActivation()
		return nil
	}
	for _, listen := range listenList(s.cfg) {
		socks, err := s.bindAddress(listen, s.runningAtStart())
		if err != nil {
			s.closeSockets()
			return err
		}
		for _, sock := range socks {
			s.addSocket(sock)
		}
	}
	return nil
}

// listenList is the configured addresses.
func listenList(cfg config.Config) []string {
	return cfg.Listen
}

// runningAtStart is the worker count to start with: a successor keeps its
// predecessor's (TTIN/TTOU included). A USR2 changes the binary, a HUP the
// configuration: a successor also keeps the configured count its
// predecessor had (see start), so a `workers` setting edited since is
// applied by the next HUP, in order with the other requests — those passed
// on at the handover included.
func (s *Supervisor) runningAtStart() int {
	if u := s.opts.Upgrade; u != nil && u.Running >= 1 {
		return min(u.Running, config.MaxWorkers)
	}
	return s.cfg.Workers
}

func (s *Supervisor) closeSockets() {
	for _, sock := range s.sockets {
		sock.close()
	}
}

// Addrs returns the addresses the supervisor listens on, each once.
func (s *Supervisor) Addrs() []string {
	return s.listenAddrs()
}

// Signal hands a signal to the running supervisor: TERM and INT drain and
// stop, QUIT stops at once, HUP reloads, USR2 upgrades the binary, TTIN and
// TTOU add and remove a worker. It never blocks once Run has returned.
func (s *Supervisor) Signal(sig os.Signal) {
	select {
	case s.requestc <- request{kind: requestSignal, sig: sig}:
	case <-s.done:
	}
}

// Reload is HUP that waits: it returns once the reload's rollout has
// finished (nil), or failed, or ctx ended (the rollout goes on).
func (s *Supervisor) Reload(ctx context.Context) error {
	return s.ask(ctx, request{kind: requestReload, sig: syscall.SIGHUP})
}

// Upgrade is USR2 that waits: it returns the successor's pid once it has
// taken over, or why it did not, or ctx's error (the upgrade goes on).
func (s *Supervisor) Upgrade(ctx context.Context) (int, error) {
	if err := s.ask(ctx, request{kind: requestUpgrade, sig: syscall.SIGUSR2}); err != nil {
		return 0, err
	}
	s.metrics.mu.Lock()
	defer s.metrics.mu.Unlock()
	return s.metrics.successor, nil
}

// ask hands the loop a request and waits for its reply.
func (s *Supervisor) ask(ctx context.Context, req request) error {
	reply := make(chan error, 1)
	req.reply = reply
	select {
	case s.requestc <- req:
	case <-s.done:
		return errStopping
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-s.done:
		return errStopping
	case <-ctx.Done():
		return ctx.Err()
	}
}

// requestKind says where a request came from.
type requestKind int

const (
	requestSignal   requestKind = iota + 1 // a signal (sig)
	requestReload                          // Reload: a HUP with a reply
	requestUpgrade                         // Upgrade: a USR2 with a reply
	requestConverge                        // the loop's own retry of the running count (see converge)
)

// request is a signal, a call waiting for its reply, or a converge.
type request struct {
	kind  requestKind
	sig   os.Signal
	reply chan error // nil for a plain signal
}

// errStopping answers requests the supervisor will not carry out.
var errStopping = errors.New("supervisor stopping")

// failRequests answers every waiting request with why and returns none.
func (s *Supervisor) failRequests(reqs []request, why string) []request {
	for _, r := range reqs {
		if r.reply != nil {
			r.reply <- fmt.Errorf("%s", why)
		}
	}
	return nil
}

// send delivers an event to the loop unless it has returned.
func (s *Supervisor) send(ev event) {
	select {
	case s.events <- ev:
	case <-s.done:
	}
}

// errNoWorkerStarted reports a binary that cannot run as a worker.
var errNoWorkerStarted = errors.New("no worker could be started")

// Run starts the workers and supervises them until a stop signal, then
// waits for every worker to exit. It returns nil after a requested stop.
func (s *Supervisor) Run() error {
	defer close(s.done)
	defer s.closeSockets()
	if err := s.start(); err != nil {
		s.stop(syscall.SIGQUIT)
		s.waitWorkers()
		return err
	}
	s.updateMetrics()
	go s.sampleStats(s.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for !s.finished() {
		timer.Reset(s.nextDeadline().Sub(s.env.now()))
		select {
		case ev := <-s.events:
			s.handle(ev)
		case req := <-s.requestc:
			s.handleRequest(req)
		case <-timer.C:
		}
		s.settle()
	}
	s.finish()
	return s.exitErr
}

// settle runs after every event, signal and timer: it fires what is due,
// makes every socket served again (see reconcile), then restarts the slots
// that are due, last because the steps before may have left no worker
// serving, which cuts backoffs short (see restartDue).
func (s *Supervisor) settle() {
	now := s.env.now()
	s.fireDeadlines(now)
	s.reconcile()
	s.restartDue(now)
	s.startDeferredUpgrade()
	s.updateMetrics()
}

// start creates the slots and starts their workers.
func (s *Supervisor) start() error {
	n := s.runningAtStart()
	s.running = n
	if u := s.opts.Upgrade; u != nil && u.Configured >= 1 && u.Configured != s.cfg.Workers {
		s.log.Info("keeping the predecessor's configured worker count until a reload", "configured", u.Configured, "file", s.cfg.Workers)
		s.cfg.Workers = u.Configured
	}
	s.log.Info("supervisor starting", "pid", os.Getpid(), "workers", n, "configured", s.cfg.Workers,
		"sockets", len(s.sockets), "listen", s.listenAddrs(), "open_files_limit", config.OpenFilesLimit(),
		"max_connections_per_worker", s.cfg.ConnectionLimit())
	addrs, groups := s.addrGroups()
	for _, addr := range addrs {
		if first := s.socket(groups[addr][0]); len(groups[addr]) < n && !first.joinable() {
			s.log.Info("workers share the inherited sockets: more cannot join their port (no SO_REUSEPORT, or another owner)",
				"addr", addr, "sockets", len(groups[addr]), "workers", n, "socket_uid", first.uid, "uid", os.Geteuid())
		}
	}
	for range n {
		s.slots = append(s.slots, &slot{index: len(s.slots)})
		s.ensureSockets()
	}
	s.rehome()
	for _, sl := range s.slots {
		w, err := s.spawn(sl)
		if err != nil {
			return fmt.Errorf("%w: %w", errNoWorkerStarted, err)
		}
		sl.cur = w
	}
	return nil
}

// finished reports whether Run's loop is done: stopping, and every worker
// reaped.
func (s *Supervisor) finished() bool {
	return s.stopping != 0 && len(s.workers) == 0
}

// waitWorkers drains events until every started worker has exited; used
// when startup fails half-way.
func (s *Supervisor) waitWorkers() {
	deadline := time.After(quitTimeout + time.Second)
	for len(s.workers) > 0 {
		select {
		case ev := <-s.events:
			s.handle(ev)
		case <-deadline:
			s.killAll()
			return
		}
	}
}
