package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/urfave/cli/v2"
	"golang.org/x/net/netutil"

	"github.com/camelot/lancelot/cmd/internal/statuspage"
	"github.com/camelot/lancelot/shared/admin"
	"github.com/camelot/lancelot/shared/config"
	"github.com/camelot/lancelot/shared/handoff"
	"github.com/camelot/lancelot/shared/version"
	"github.com/camelot/lancelot/supervisor"
)

// serveSettings is what the serve command line resolves to.
type serveSettings struct {
	cfg config.Config
}

// maxSideConnections caps the connections the supervisor's own ports (the
// metrics and agent ports) hold at once: beyond it new ones wait in the
// kernel's queue instead of taking the descriptors the supervisor needs to
// start workers.
const maxSideConnections = 64

// runServe is the supervisor process: it opens everything that can fail
// first (a bad address is a one-line error, not a log), then says which
// lancelot starts, then runs one run.Group of the supervisor and its side
// ports until a stop.
func runServe(c *cli.Context, s serveSettings) error {
	if os.Getpid() == 1 { // a container's first process: stay its init
		return runInit(s.cfg)
	}
	// Signals meant for a supervisor that is still starting are dropped
	// (a successor inherits them blocked from its predecessor), not fatal;
	// forwardSignals below subscribes to them again.
	handoff.IgnoreOperatorSignals()
	signal.Ignore(syscall.SIGPIPE) // journald going away must not kill us
	// A binary upgrade's successor announces its handoff protocol before
	// anything else is decided.
	upgrade, err := handoff.ReadUpgrade(version.Version)
	if err != nil {
		return fmt.Errorf("binary upgrade: %w", err)
	}
	cfg := s.cfg
	log, logs := cfg.NewLogger(os.Stderr)
	defer logs.Close(time.Second)
	sup, side, err := openServe(cfg, upgrade, log, logs.Dropped)
	if err != nil {
		return err
	}
	info := version.Get()
	log.Info("lancelot starting", "version", info.Version, "revision", info.Revision, "modified", info.Modified, "go", info.Go)
	cpus := config.AvailableCPUs()
	log.Info("worker count", "workers", cfg.Workers, "cpus", cpus.N, "source", cpus.Source)

	var g run.Group
	// The supervisor: workers, rollouts, upgrades, stop.
	sigc := notifySignals()
	running, ended := context.WithCancel(context.Background())
	g.Add(func() error { defer ended(); return sup.Run() }, func(error) { sup.Signal(syscall.SIGTERM) })
	// Signals: forwarded to the supervisor for as long as it runs, also
	// through a stop that a failed side port began (a QUIT then still cuts
	// the drain short).
	g.Add(func() error { return forwardSignals(running, sigc, sup) }, func(error) {})
	// Admin socket, metrics and agent ports.
	side.addTo(&g, sup, log)
	return g.Run()
}

// openServe builds the supervisor and binds its side ports. A successor
// that cannot start tells its predecessor why, which logs it and serves
// on.
func openServe(cfg config.Config, upgrade *handoff.Upgrade, log *slog.Logger, logDropped func() uint64) (*supervisor.Supervisor, *sidePorts, error) {
	sup, err := newSupervisor(cfg, upgrade, log)
	var side *sidePorts
	if err == nil {
		side, err = openSidePorts(cfg, sup, logDropped)
	}
	if err != nil && upgrade != nil {
		upgrade.Fail(err)
	}
	return sup, side, err
}

// newSupervisor builds the supervisor from the configuration and what this
// process inherited (a predecessor's sockets, or systemd's).
func newSupervisor(cfg config.Config, upgrade *handoff.Upgrade, log *slog.Logger) (*supervisor.Supervisor, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary: %w", err)
	}
	// A successor learns which of its sockets are systemd's from the
	// handoff (see handoff.Upgrade.Activated); LISTEN_* never reach it.
	var activated []*os.File
	if upgrade == nil {
		activated = activation.Files(true) // unset LISTEN_*: workers must not see them
	}
	wd, _ := daemon.SdWatchdogEnabled(false)
	return supervisor.New(supervisor.Options{
		Config:     cfg,
		Reload:     reloadConfig(os.Args),
		Executable: exe,
		Args:       os.Args[1:],
		Env:        os.Environ(),
		Activated:  activated,
		Upgrade:    upgrade,
		Notify:     notifier(log),
		Watchdog:   wd,
		Logger:     log,
	})
}

// sidePorts are the supervisor's own listeners: the admin socket
// (`lancelot reload`, `upgrade`, `status`), metrics and the agent port.
type sidePorts struct {
	admin          net.Listener // nil when it could not be opened
	adminErr       error
	metrics        *http.Server
	metricsLn      net.Listener
	agent, agentLn net.Listener
}

// openSidePorts binds the side ports the configuration asks for.
func openSidePorts(cfg config.Config, sup *supervisor.Supervisor, logDropped func() uint64) (*sidePorts, error) {
	p := &sidePorts{}
	p.admin, p.adminErr = admin.Listen()
	if cfg.Metrics != "" {
		srv, ln, err := metricsServer(cfg.Metrics, sup, logDropped)
		if err != nil {
			return nil, err
		}
		p.metrics, p.metricsLn = srv, ln
	}
	if cfg.AgentListen != "" {
		ln, err := supervisor.ListenSidePort(cfg.AgentListen)
		if err != nil {
			return nil, fmt.Errorf("--agent-listen %s: %w", cfg.AgentListen, err)
		}
		p.agentLn = ln
		p.agent = netutil.LimitListener(ln, maxSideConnections)
	}
	return p, nil
}

// addTo adds an actor per side port to g.
func (p *sidePorts) addTo(g *run.Group, sup *supervisor.Supervisor, log *slog.Logger) {
	if p.admin == nil {
		log.Warn("no admin socket; `lancelot reload`, `upgrade` and `status` cannot reach this supervisor", "err", p.adminErr)
	} else {
		ln := p.admin
		g.Add(func() error { return admin.Serve(ln, adminHandler(sup)) }, func(error) { ln.Close() })
	}
	if p.metrics != nil {
		srv, ln := p.metrics, p.metricsLn
		log.Info("metrics listening", "addr", ln.Addr().String())
		g.Add(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics server: %w", err)
			}
			return nil
		}, func(error) { srv.Close() })
	}
	if p.agent != nil {
		ln := p.agent
		log.Info("agent listening", "addr", p.agentLn.Addr().String())
		g.Add(func() error { return sup.ServeAgent(ln) }, func(error) { ln.Close() })
	}
}

// notifySignals subscribes to every signal the supervisor handles, before
// its actors start: the supervisor may report ready before forwardSignals'
// goroutine runs, and a TERM sent at once must not get the default action
// (death by the signal).
//
// The subscription is never stopped: a signal that arrives while the
// process is on its way out (a QUIT just after a TERM whose stop was
// quick) then lands in a channel nobody reads, and is dropped. After
// signal.Stop it would get the default action instead: for QUIT, a
// goroutine dump and exit status 2, which systemd counts as a failure.
func notifySignals() <-chan os.Signal {
	sigc := make(chan os.Signal, 16)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP,
		syscall.SIGUSR2, syscall.SIGTTIN, syscall.SIGTTOU)
	return sigc
}

// forwardSignals hands every signal from sigc to the supervisor until ctx
// ends; unlike run.SignalHandler it keeps going after HUP, TTIN and the
// like.
func forwardSignals(ctx context.Context, sigc <-chan os.Signal, sup *supervisor.Supervisor) error {
	for {
		select {
		case sig := <-sigc:
			sup.Signal(sig)
		case <-ctx.Done():
			return nil
		}
	}
}

// adminHandler carries out the admin socket's commands.
func adminHandler(sup *supervisor.Supervisor) admin.Handler {
	return func(ctx context.Context, command string) (string, error) {
		switch command {
		case admin.CommandReload:
			return "", sup.Reload(ctx)
		case admin.CommandUpgrade:
			pid, err := sup.Upgrade(ctx)
			return strconv.Itoa(pid), err
		case admin.CommandStatus:
			b, err := json.Marshal(sup.Status())
			return string(b), err
		}
		return "", fmt.Errorf("unknown command %q", command)
	}
}

// notifier sends sd_notify messages; without NOTIFY_SOCKET it does nothing.
func notifier(log *slog.Logger) func(string) {
	return func(state string) {
		if _, err := daemon.SdNotify(false, state); err != nil {
			log.Warn("sd_notify", "err", err)
		}
	}
}

// metricsServer serves /metrics, /healthz and the status page (/ and
// /status.json) on addr. Every limit is set:
// the port must not be a way to exhaust the supervisor's memory or
// descriptors (slow or huge headers, idle keep-alive connections).
func metricsServer(addr string, sup *supervisor.Supervisor, logDropped func() uint64) (*http.Server, net.Listener, error) {
	ln, err := supervisor.ListenSidePort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--metrics %s: %w", addr, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(sup.Collector(logDropped),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector())
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", healthz(sup))
	statuspage.Register(mux, sup.Status)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    8 << 10,
	}
	return srv, netutil.LimitListener(ln, maxSideConnections), nil
}

// healthz is the readiness probe: 200 while serving, 503 when no worker is
// ready or a stop has begun (drain delay included), so a probe takes the
// instance out of rotation before it stops accepting.
func healthz(sup *supervisor.Supervisor) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		switch sup.Agent() {
		case supervisor.AgentReady:
			io.WriteString(w, "ready\n")
		case supervisor.AgentDrain:
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "draining\n")
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "down\n")
		}
	}
}

// reloadConfig re-parses the original command line, config file included,
// for HUP: the same flags win over the same file as at start.
func reloadConfig(args []string) func() (config.Config, error) {
	return func() (config.Config, error) {
		var got *config.Config
		app := newApp(func(_ *cli.Context, s serveSettings) error {
			got = &s.cfg
			return nil
		})
		app.Writer, app.ErrWriter = io.Discard, io.Discard
		if err := app.Run(args); err != nil {
			return config.Config{}, errors.New(oneLine(err.Error()))
		}
		if got == nil {
			return config.Config{}, errors.New("command line did not run serve")
		}
		return *got, nil
	}
}
