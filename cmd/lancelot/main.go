// Command lancelot serves the Launcelot protocol from the book Foundations
// of Python Network Programming with a pre-fork supervisor and per-core
// worker processes, and ships the protocol's client (ask) and load
// generator (bench).
//
// The process model. One binary plays three roles, each a process:
//
//	supervisor  `lancelot serve`           runServe (serve.go) → supervisor.Supervisor.Run
//	            owns the listening sockets, starts, watches and replaces the
//	            workers, carries out HUP, USR2, TTIN/TTOU, talks to systemd
//	worker      `lancelot worker --slot N`  runWorker (worker.go) → worker.Process.Run
//	            started by the supervisor (re-executing /proc/self/exe) with
//	            its sockets and control channel; serves clients
//	launcher    `lancelot upgrade-launch`   launch.go → handoff.Launch
//	            started by a supervisor for USR2: starts the new binary as
//	            the successor supervisor and exits at once, so that the
//	            successor is systemd's own child
//
// Package handoff holds how each role is started and what it is handed.
//
// The other commands are clients of those processes: check (serve's
// configuration, binding nothing), reload, upgrade and status (the
// supervisor's admin socket), ask and bench (the protocol), version.
//
// main only wires: it builds the command line, runs it, and prints the one
// error line. Each command's Action builds its parts and hands them down.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/camelot/lancelot/shared/handoff"
)

func main() {
	app := newApp(runServe)
	if err := app.Run(os.Args); err != nil {
		// A binary upgrade's successor that fails before it read the
		// handoff (a bad configuration) tells its predecessor why.
		handoff.RefuseEarly(err)
		fmt.Fprintf(os.Stderr, "lancelot: %s\n", oneLine(err.Error()))
		os.Exit(exitStatus(err))
	}
}

// newApp builds the command line. serve runs the server for `serve`; HUP
// builds a second App with a serve that only captures the configuration.
func newApp(serve func(*cli.Context, serveSettings) error) *cli.App {
	return &cli.App{
		Name:  "lancelot",
		Usage: "answer the questions of the Bridge of Death (the Launcelot protocol) on port 1060",
		Commands: []*cli.Command{
			// The process roles (see the package doc); worker and
			// upgrade-launch are started by serve, never by hand.
			serveCommand(serve),
			workerCommand(),
			upgradeLaunchCommand(),
			// Clients of a running supervisor.
			checkCommand(),
			reloadCommand(),
			upgradeCommand(),
			statusCommand(),
			// Clients of the protocol, and the rest.
			askCommand(),
			benchCommand(),
			versionCommand(),
			healthcheckCommand(),
			gendocsCommand(),
		},
		// Shell completion asks the binary (--generate-bash-completion), so
		// it always knows the installed version's commands and flags.
		EnableBashCompletion: true,
		// --version as a flag of our own: urfave/cli's would print
		// through a package-level printer.
		HideVersion: true,
		Flags:       []cli.Flag{&cli.BoolFlag{Name: "version", Usage: "print the version, as the version command does"}},
		Action: func(c *cli.Context) error {
			switch {
			case c.Bool("version"):
				return printVersion(c, false)
			case c.NArg() > 0:
				return unknownCommand(c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		HideHelpCommand: true,
		OnUsageError:    usageError,
		CommandNotFound: func(c *cli.Context, name string) {
			unknownCommand(name)
		},
	}
}

// unknownCommand exits as a usage error does: one line, status 2.
func unknownCommand(name string) error {
	fmt.Fprintf(os.Stderr, "lancelot: unknown command %q (try --help)\n", name)
	os.Exit(2)
	return nil
}

// usageError replaces urfave/cli's multi-line usage dump with one line,
// exit status 2, and flags named --flag.
func usageError(_ *cli.Context, err error, _ bool) error {
	return usageErrorf("%s (try --help)", doubleDash(err.Error()))
}

// oneLine folds a multi-line error (some libraries' messages have newlines)
// into the single line docs/reference.md promises.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
