package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// checkCommand is `lancelot check`: serve's own flags and config file
// parsing and validation, stopping short of binding anything, as
// `nginx -t` does. Run it before a reload or an upgrade.
func checkCommand() *cli.Command {
	cmd := serveCommand(func(c *cli.Context, _ serveSettings) error {
		_, err := fmt.Fprintln(c.App.Writer, "configuration OK")
		return err
	})
	cmd.Name = "check"
	cmd.Usage = "check serve's flags and config file as serve would, without binding anything"
	cmd.ArgsUsage = "[INTERFACE]"
	cmd.Description = "Takes serve's flags and INTERFACE. Prints \"configuration OK\" and exits 0, or prints the one-line\n" +
		"error serve would print and exits 1 (2 for a command-line error). Run it before `systemctl reload`\n" +
		"or `lancelot upgrade`."
	return cmd
}
