package main

import (
	"errors"

	"github.com/urfave/cli/v2"

	"github.com/camelot/lancelot/shared/handoff"
)

// upgradeLaunchCommand is the hidden command a supervisor starts a binary
// upgrade through: it starts the new binary with the handoff it was given,
// reports the successor's pid and exits at once, so the successor is
// re-parented (to systemd, when it is PID 1) before it becomes the main
// process (see handoff.Launch).
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
			return handoff.Launch(c.Args().First(), c.Args().Tail())
		},
	}
}
