package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/camelot/lancelot/shared/config"
	"github.com/camelot/lancelot/shared/control"
	"github.com/camelot/lancelot/shared/handoff"
	"github.com/camelot/lancelot/worker"
)

// workerCommand is the hidden command the supervisor re-executes the binary
// with: Go cannot fork without exec, so a worker is this binary again, with
// its sockets and control channel inherited (see package handoff).
func workerCommand() *cli.Command {
	return &cli.Command{
		Name:   "worker",
		Usage:  "internal: one worker process, started by serve",
		Hidden: true,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "slot", Usage: "the worker's slot, for logs and ps"},
		},
		Action: func(c *cli.Context) error { return runWorker(c.Int("slot")) },
	}
}

// workerName is what ps, top and ss -p show for a worker (comm holds 15
// bytes): the binary is re-executed as /proc/self/exe, which they would
// otherwise show as "exe".
const workerName = "lancelot-worker"

func runWorker(slot int) error {
	setProcessName(workerName)
	// Signals meant for the supervisor may reach every process (systemctl
	// kill, a terminal's hangup): a worker ignores them, and drops those
	// that arrived while it started (see handoff.Start).
	handoff.IgnoreOperatorSignals()
	signal.Ignore(syscall.SIGPIPE)
	// The stop signals are caught from the start to the exit: one that
	// arrives while the worker starts waits for Run, and one that arrives
	// on the way out (a QUIT just after a quick drain) is dropped. The
	// subscription is never stopped, since after signal.Stop a QUIT would
	// get the runtime's default action: a goroutine dump and exit status 2.
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	h, err := handoff.ReadWorker()
	if err != nil {
		return err
	}
	cfg := h.Config
	log, logs := cfg.NewLogger(os.Stderr)
	defer logs.Close(time.Second)
	log = log.With("slot", slot, "pid", os.Getpid())
	table, err := cfg.Table()
	if err != nil {
		return err
	}
	proxy, allow, err := cfg.Proxy()
	if err != nil {
		return err
	}
	ctrl, err := control.FromFile(h.Control)
	if err != nil {
		return err
	}
	setWorkerProcs(config.AvailableCPUs(), cfg.Workers)
	if cfg.CPUAffinity {
		pinWorker(slot, runtime.GOMAXPROCS(0), log)
	}
	eng := worker.NewEventLoop(worker.Options{
		Table:                   table,
		MaxQuestionBytes:        cfg.MaxQuestionBytes,
		IdleTimeout:             cfg.IdleTimeout,
		ReadTimeout:             cfg.ReadTimeout,
		WriteTimeout:            cfg.WriteTimeout,
		MaxConnections:          cfg.ConnectionLimit(),
		MaxConnectionsPerSource: cfg.MaxConnectionsPerSource,
		Proxy:                   proxy,
		ProxyAllow:              allow,
		CloseSpread:             min(time.Second, cfg.ShutdownTimeout/4),
		Logger:                  log,
	})
	log.Debug("worker starting", "gomaxprocs", runtime.GOMAXPROCS(0), "sockets", len(h.Sockets), "max_connections", cfg.ConnectionLimit())
	return worker.Process{
		Engine:          eng,
		Control:         ctrl,
		Sockets:         h.Sockets,
		Signals:         sigc,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Logger:          log,
		LogDropped:      logs.Dropped,
	}.Run(context.Background())
}

// setProcessName names every thread of this process, as prctl's
// PR_SET_NAME would name the calling one: a thread's comm is its own, the
// main thread's is the process's, and new threads copy the name of the
// thread that creates them. Failing costs only the name.
func setProcessName(name string) {
	threads, _ := filepath.Glob("/proc/self/task/*/comm")
	for _, f := range threads {
		os.WriteFile(f, []byte(name), 0)
	}
}

// setWorkerProcs gives the worker its share of the CPUs, unless the user
// set GOMAXPROCS: the CPUs the process may use (affinity mask capped by the
// cgroup quota, the figure the default worker count comes from) divided
// among the workers, at least 1. The event loop runs one loop per P.
// Measured on 2 CPUs, persistent c=100 (exchanges/s, server CPU µs per
// exchange): 2 workers, GOMAXPROCS 1 or 2 each: 157k, 5.75 both; 1 worker,
// GOMAXPROCS 1: 129k, 5.4; 2: 153k, 5.8; 3: 153k, 6.1.
func setWorkerProcs(cpus config.CPUs, workers int) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	runtime.GOMAXPROCS(max(1, cpus.N/max(1, workers)))
}

// pinWorker applies --cpu-affinity: worker i runs on the i-th block of
// share CPUs (its GOMAXPROCS, so that it has a CPU for each P), mod the
// CPUs allowed. A failure costs only locality, so it is logged, not fatal.
func pinWorker(slot, share int, log *slog.Logger) {
	cpus, err := worker.PinToCPUs(slot, share)
	if err != nil {
		log.Warn("cpu affinity not applied", "err", err)
		return
	}
	if len(cpus) == 1 {
		log.Info("pinned to CPU", "cpu", cpus[0]) // as before shares: scripts read it
		return
	}
	log.Info("pinned to CPUs", "cpus", cpus)
}
