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
	if upgrade != nil && upgrade.Protocol == handoff.LegacyProtocol {
		return relayLegacy(upgrade, log)
	}
	sup, err := newSupervisor(cfg, upgrade, log)
	if err != nil {
		return err
	}
	side, err := openSidePorts(cfg, sup, logs.Dropped)
	if err != nil {
		return err
	}
	info := version.Get()
	log.Info("lancelot starting", "version", info.Version, "revision", info.Revision, "modified", info.Modified, "go", info.Go)
	cpus := config.AvailableCPUs()
	log.Info("worker count", "workers", cfg.Workers, "cpus", cpus.N, "source", cpus.Source)

	var g run.Group
	// The supervisor: workers, rollouts, upgrades, stop.
	g.Add(sup.Run, func(error) { sup.Signal(syscall.SIGTERM) })
	// Signals: forwarded to the supervisor for as long as it runs.
	{
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return forwardSignals(ctx, sup) }, func(error) { cancel() })
	}
	// Admin socket, metrics and agent ports.
	side.addTo(&g, sup, log)
	return g.Run()
}

// relayLegacy is this process's whole job when release 0.2.0 started it:
// start the real successor so that it is not 0.2.0's child, and see the
// handover through (see handoff.Relay).
func relayLegacy(u *handoff.Upgrade, log *slog.Logger) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	log.Info("taking over from release 0.2.0 through a relay", "relay_pid", os.Getpid(), "version", version.Version)
	if err := handoff.Relay(u, exe, os.Args[1:], version.Version, notifier(log)); err != nil {
		return fmt.Errorf("binary upgrade from 0.2.0: %w", err)
	}
	log.Info("handover from release 0.2.0 complete; relay exiting", "relay_pid", os.Getpid())
	return nil
}

// newSupervisor builds the supervisor from the configuration and what this
// process inherited (a predecessor's sockets, or systemd's).
func newSupervisor(cfg config.Config, upgrade *handoff.Upgrade, log *slog.Logger) (*supervisor.Supervisor, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary: %w", err)
	}
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

// forwardSignals hands every signal the supervisor handles to it; unlike
// run.SignalHandler it keeps going after HUP, TTIN and the like.
func forwardSignals(ctx context.Context, sup *supervisor.Supervisor) error {
	sigc := make(chan os.Signal, 16)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP,
		syscall.SIGUSR2, syscall.SIGTTIN, syscall.SIGTTOU)
	defer signal.Stop(sigc)
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
