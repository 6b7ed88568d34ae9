package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/camelot/lancelot/shared/config"
	"github.com/camelot/lancelot/shared/control"
	"github.com/camelot/lancelot/worker"
)

// workerCommand is the hidden command the supervisor re-executes the binary
// with: Go cannot fork without exec, so a worker is this binary again, with
// its sockets and control channel inherited (see package control).
func workerCommand() *cli.Command {
	return &cli.Command{
		Name:   "worker",
		Usage:  "internal: one worker process, started by serve",
		Hidden: true,
		Action: func(*cli.Context) error { return runWorker() },
	}
}

func runWorker() error {
	// Signals meant for the supervisor may reach the whole process group
	// (a terminal's hangup, a stray TTIN): a worker ignores them.
	signal.Ignore(syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGPIPE)
	var cfg config.Config
	if err := json.Unmarshal([]byte(os.Getenv(control.EnvConfig)), &cfg); err != nil {
		return fmt.Errorf("worker: %s: %w (workers are started by serve)", control.EnvConfig, err)
	}
	slot := os.Getenv(control.EnvSlot)
	log := cfg.NewLogger(os.Stderr).With("slot", slot, "pid", os.Getpid())
	table, err := cfg.Table()
	if err != nil {
		return err
	}
	ctrl, err := control.FromFile(os.NewFile(control.ControlFD, "control"))
	if err != nil {
		return err
	}
	listeners, err := inheritedListeners()
	if err != nil {
		return err
	}
	setWorkerProcs(cfg.Workers)
	if cfg.CPUAffinity {
		pinWorker(slot, log)
	}
	srv := newEngine(os.Getenv(envEngine), log, worker.Options{
		Table:            table,
		MaxQuestionBytes: cfg.MaxQuestionBytes,
		IdleTimeout:      cfg.IdleTimeout,
		ReadTimeout:      cfg.ReadTimeout,
		WriteTimeout:     cfg.WriteTimeout,
		Logger:           log,
	})
	log.Debug("worker engine", "engine", fmt.Sprintf("%T", srv), "gomaxprocs", runtime.GOMAXPROCS(0))
	return worker.Process{
		Server:          srv,
		Control:         ctrl,
		Listeners:       listeners,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Logger:          log,
	}.Run(context.Background())
}

// envEngine selects a worker's engine: unset (or "eventloop") for the epoll
// event loop, the default; "goroutine" for the goroutine-per-connection
// Server, kept as a fallback and for comparison. Read by the worker only.
const envEngine = "LANCELOT_ENGINE"

func newEngine(name string, log *slog.Logger, o worker.Options) worker.Engine {
	switch name {
	case "goroutine":
		return worker.New(o)
	case "", "eventloop":
	default:
		log.Warn("unknown engine; using the event loop", "env", envEngine, "value", name)
	}
	return worker.NewEventLoop(o)
}

// setWorkerProcs gives the worker its share of the CPUs, unless the user
// set GOMAXPROCS: the CPUs the runtime found (affinity mask, cgroup quota)
// divided among the workers, at least 1. The event loop runs one loop per
// P. Measured on 2 CPUs, persistent c=100 (exchanges/s, server CPU µs per
// exchange): 2 workers, GOMAXPROCS 1 or 2 each: 157k, 5.75 both; 1 worker,
// GOMAXPROCS 1: 129k, 5.4; 2: 153k, 5.8; 3: 153k, 6.1.
func setWorkerProcs(workers int) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	runtime.GOMAXPROCS(max(1, runtime.GOMAXPROCS(0)/max(1, workers)))
}

// inheritedListeners turns fds FirstListenerFD.. into listeners. FileListener
// duplicates the descriptor, so each inherited one is closed afterwards.
func inheritedListeners() ([]net.Listener, error) {
	n, err := strconv.Atoi(os.Getenv(control.EnvListeners))
	if err != nil || n < 1 {
		return nil, fmt.Errorf("worker: %s=%q: no listening sockets passed", control.EnvListeners, os.Getenv(control.EnvListeners))
	}
	lns := make([]net.Listener, 0, n)
	for i := range n {
		f := os.NewFile(uintptr(control.FirstListenerFD+i), "listener")
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("worker: listener fd %d: %w", control.FirstListenerFD+i, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// pinWorker applies --cpu-affinity: worker i runs on CPU i (mod the CPUs
// allowed). A failure costs only locality, so it is logged, not fatal.
func pinWorker(slot string, log *slog.Logger) {
	n, _ := strconv.Atoi(slot)
	cpu, err := worker.PinToCPU(n)
	if err != nil {
		log.Warn("cpu affinity not applied", "err", err)
		return
	}
	log.Info("pinned to CPU", "cpu", cpu)
}
