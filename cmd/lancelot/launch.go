package main

import (
	"errors"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/camelot/lancelot/shared/handoff"
)

// upgradeLaunchCommand is the hidden command a supervisor starts a binary
// upgrade through: it starts the new binary with the handoff it was given,
// reports the successor's pid on the readiness pipe and exits at once, so
// the successor is re-parented (to systemd, when it is PID 1) before it
// tells systemd it is the main process (see supervisor's upgrade.go).
func upgradeLaunchCommand() *cli.Command {
	return &cli.Command{
		Name:      "upgrade-launch",
		Usage:     "internal: start a binary upgrade's new supervisor, started by serve",
		ArgsUsage: "-- BINARY ARGS...",
		Hidden:    true,
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 {
				return errors.New("upgrade-launch: no binary to start")
			}
			return launchSuccessor(c.Args().First(), c.Args().Tail())
		},
	}
}

func launchSuccessor(binary string, args []string) error {
	handoff.IgnoreOperatorSignals()
	u, err := handoff.ReadUpgrade()
	if err != nil {
		return err
	}
	if u == nil {
		return errors.New("upgrade-launch: not started by serve")
	}
	u.Launcher = os.Getpid() // the successor waits for us to be gone
	cmd := u.Command(binary, args, os.Environ())
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := handoff.Start(cmd); err != nil {
		return err // the old supervisor reads EOF: the upgrade failed
	}
	err = handoff.ReportPID(u.Ready, cmd.Process.Pid)
	cmd.Process.Release()
	return err
}
