package main

import (
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/camelot/lancelot/shared/version"
)

// versionCommand is `lancelot version`: the release, the VCS revision and
// the Go version, so an operator can tell what runs (`lancelot status`
// says the same of a running server).
func versionCommand() *cli.Command {
	return &cli.Command{
		Name:         "version",
		Usage:        "print lancelot's version, VCS revision and Go version",
		Flags:        []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print one JSON object: version, revision, modified, go"}},
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			return printVersion(c, c.Bool("json"))
		},
	}
}

func printVersion(c *cli.Context, asJSON bool) error {
	info := version.Get()
	if asJSON {
		b, err := json.Marshal(info)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(c.App.Writer, string(b))
		return err
	}
	_, err := fmt.Fprintln(c.App.Writer, "lancelot "+info.String())
	return err
}
