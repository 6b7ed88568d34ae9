package main

import (
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/camelot/lancelot/cmd/internal/pid1"
	"github.com/camelot/lancelot/shared/config"
)

// runInit is `serve` as PID 1 (a container's first process): this process
// stays the container's init and runs the supervisor as its child, so a
// binary upgrade does not end the container (see package pid1). It exits
// with the supervisor's status.
func runInit(cfg config.Config) error {
	log, logs := cfg.NewLogger(os.Stderr)
	defer logs.Close(time.Second)
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	status, err := pid1.Run(pid1.Options{
		Executable: exe,
		Args:       os.Args,
		Env:        os.Environ(),
		Logger:     log,
		Notify:     notifier(log),
	})
	if err != nil {
		return fmt.Errorf("as PID 1: %w", err)
	}
	if status != 0 {
		return cli.Exit("", status) // the supervisor said why
	}
	return nil
}
