package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
)

// gendocsCommand is the hidden `lancelot gendocs DIR`: it writes the man
// pages and the fish completion generated from this very command line, so
// the Debian package (docs/packaging/build.sh) ships documentation that
// cannot drift from the flags. The bash and zsh completions are urfave/cli's
// own scripts, which ask the binary (EnableBashCompletion) at run time.
func gendocsCommand() *cli.Command {
	return &cli.Command{
		Name:         "gendocs",
		Usage:        "internal: write man pages (DIR/man1) and the fish completion (DIR/lancelot.fish), for packaging",
		ArgsUsage:    "DIR",
		Hidden:       true,
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("gendocs: want one argument, the output directory")
			}
			// A fresh App: the running one has been set up, and urfave/cli
			// would list the help flags it added there twice.
			return writeDocs(newApp(runServe), c.Args().First())
		},
	}
}

// writeDocs writes lancelot.1, one lancelot-COMMAND.1 per visible command,
// and lancelot.fish.
func writeDocs(app *cli.App, dir string) error {
	pages := map[string]*cli.App{"lancelot": mainPage(app)}
	seeAlso := map[string]string{"lancelot": ""}
	for _, cmd := range app.VisibleCommands() {
		pages["lancelot-"+cmd.Name] = commandPage(cmd)
		seeAlso["lancelot-"+cmd.Name] = "\\fBlancelot\\fP(1)"
		seeAlso["lancelot"] += fmt.Sprintf("\\fBlancelot-%s\\fP(1), ", cmd.Name)
	}
	seeAlso["lancelot"] += "and /usr/share/doc/lancelot"
	man := filepath.Join(dir, "man1")
	if err := os.MkdirAll(man, 0o755); err != nil {
		return fmt.Errorf("gendocs: %w", err)
	}
	for name, page := range pages {
		text, err := page.ToManWithSection(1)
		if err != nil {
			return fmt.Errorf("gendocs: man page %s: %w", name, err)
		}
		if name != "lancelot" {
			// A command's page has no global options, only its own.
			text = strings.Replace(text, ".SH GLOBAL OPTIONS", ".SH OPTIONS", 1)
		}
		// ToMan's template has no SEE ALSO section: it goes last, in roff.
		text = strings.TrimRight(text, "\n") + "\n\n.SH SEE ALSO\n" + seeAlso[name] + "\n"
		if err := os.WriteFile(filepath.Join(man, name+".1"), []byte(text), 0o644); err != nil {
			return fmt.Errorf("gendocs: %w", err)
		}
	}
	fish, err := app.ToFishCompletion()
	if err != nil {
		return fmt.Errorf("gendocs: fish completion: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "lancelot.fish"), []byte(fish), 0o644); err != nil {
		return fmt.Errorf("gendocs: %w", err)
	}
	return nil
}

// mainPage is lancelot(1): the global flags and each command's one-line
// usage; the flags are on the command's own page, named under SEE ALSO.
func mainPage(app *cli.App) *cli.App {
	var cmds []*cli.Command
	for _, cmd := range app.VisibleCommands() {
		cmds = append(cmds, &cli.Command{Name: cmd.Name, Usage: cmd.Usage})
	}
	return &cli.App{
		Name:      app.Name,
		Usage:     app.Usage,
		UsageText: "lancelot [--version] COMMAND [OPTIONS] [ARGUMENTS...]",
		Description: "One supervisor process owns the listening sockets and manages N worker processes, " +
			"each serving many clients at once. Each command below has its own page, lancelot-COMMAND(1).",
		Flags:    app.Flags,
		Commands: cmds,
	}
}

// commandPage is lancelot-COMMAND(1): an App of its own, so ToMan gives the
// command's usage, description and flags their own sections.
func commandPage(cmd *cli.Command) *cli.App {
	for _, f := range cmd.Flags {
		// The default worker count is this machine's CPUs; the page must
		// not depend on the machine that built it.
		if i, ok := f.(*altsrc.IntFlag); ok && i.Name == "workers" {
			i.DefaultText = "the number of CPUs"
		}
	}
	usage := "lancelot " + cmd.Name + " [OPTIONS]"
	if cmd.ArgsUsage != "" {
		usage += " " + cmd.ArgsUsage
	}
	return &cli.App{
		Name:        "lancelot-" + cmd.Name,
		Usage:       cmd.Usage,
		UsageText:   usage,
		Description: cmd.Description,
		Flags:       cmd.Flags,
	}
}
