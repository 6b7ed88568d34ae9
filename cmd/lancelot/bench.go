package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// benchCommand is the load generator; see issue "Performance".
func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "load-test a Launcelot server",
		Action: func(*cli.Context) error {
			return fmt.Errorf("bench: not built yet")
		},
	}
}
