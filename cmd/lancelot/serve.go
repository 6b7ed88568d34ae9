package main

import (
	"context"
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
	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/shared/config"
	"github.com/camelot/lancelot/supervisor"
)

// serveSettings is what the serve command line resolves to.
type serveSettings struct {
	cfg config.Config
}

// runServe is the supervisor process.
func runServe(c *cli.Context, s serveSettings) error {
	cfg := s.cfg
	log := cfg.NewLogger(os.Stderr)
	signal.Ignore(syscall.SIGPIPE) // journald going away must not kill us
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	inherited, upgradeReady, err := inheritedSockets(&cfg)
	if err != nil {
		return err
	}
	wd, _ := daemon.SdWatchdogEnabled(false)
	sup, err := supervisor.New(supervisor.Options{
		Config:       cfg,
		Reload:       reloadConfig(os.Args),
		Executable:   exe,
		Args:         os.Args[1:],
		Env:          os.Environ(),
		Inherited:    inherited,
		UpgradeReady: upgradeReady,
		Notify:       notifier(log),
		Watchdog:     wd,
		Logger:       log,
	})
	if err != nil {
		return err
	}

	var g run.Group
	// The supervisor: workers, rollouts, upgrades, stop.
	g.Add(sup.Run, func(error) { sup.Signal(syscall.SIGTERM) })
	// Signals: forwarded to the supervisor for as long as it runs.
	{
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return forwardSignals(ctx, sup) }, func(error) { cancel() })
	}
	// Metrics: Prometheus text on --metrics.
	if cfg.Metrics != "" {
		srv, ln, err := metricsServer(cfg.Metrics, sup)
		if err != nil {
			return err
		}
		log.Info("metrics listening", "addr", ln.Addr().String())
		g.Add(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics server: %w", err)
			}
			return nil
		}, func(error) { srv.Close() })
	}
	return g.Run()
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

// inheritedSockets finds sockets passed by a binary upgrade or by systemd
// socket activation; none means the supervisor binds its own.
func inheritedSockets(cfg *config.Config) ([]*os.File, *os.File, error) {
	if n := os.Getenv(supervisor.EnvUpgradeFDs); n != "" {
		count, err := strconv.Atoi(n)
		if err != nil || count < 1 {
			return nil, nil, fmt.Errorf("%s=%q: not a socket count", supervisor.EnvUpgradeFDs, n)
		}
		files := make([]*os.File, count)
		for i := range files {
			files[i] = os.NewFile(uintptr(3+i), "inherited-listener")
		}
		readyFD, err := strconv.Atoi(os.Getenv(supervisor.EnvUpgradeReadyFD))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", supervisor.EnvUpgradeReadyFD, err)
		}
		if w, err := strconv.Atoi(os.Getenv(supervisor.EnvUpgradeWorkers)); err == nil && w >= 1 {
			cfg.Workers = w
		}
		for _, k := range []string{supervisor.EnvUpgradeFDs, supervisor.EnvUpgradeReadyFD, supervisor.EnvUpgradeWorkers} {
			os.Unsetenv(k)
		}
		unix.CloseOnExec(readyFD)
		return files, os.NewFile(uintptr(readyFD), "upgrade-ready"), nil
	}
	// unsetEnv so LISTEN_* does not leak to the workers or an upgrade.
	files := activation.Files(true)
	return files, nil, nil
}

// notifier sends sd_notify messages; without NOTIFY_SOCKET it does nothing.
func notifier(log *slog.Logger) func(string) {
	return func(state string) {
		if _, err := daemon.SdNotify(false, state); err != nil {
			log.Warn("sd_notify", "err", err)
		}
	}
}

// metricsServer binds --metrics with SO_REUSEPORT, so a binary upgrade's new
// supervisor can bind it while the old one still serves it.
func metricsServer(addr string, sup *supervisor.Supervisor) (*http.Server, net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--metrics %s: %w", addr, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(sup.Collector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector())
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln, nil
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
