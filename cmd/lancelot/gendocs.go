package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/camelot/lancelot/shared/version"
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
			date, err := docsDate(os.Getenv("SOURCE_DATE_EPOCH"))
			if err != nil {
				return err
			}
			return writeDocs(newApp(runServe), c.Args().First(), date)
		},
	}
}

// writeDocs writes lancelot.1, one lancelot-COMMAND.1 per visible command,
// and lancelot.fish. The pages' footer carries the version and date (date:
// SOURCE_DATE_EPOCH's, for a reproducible package).
func writeDocs(app *cli.App, dir string, date time.Time) error {
	man := filepath.Join(dir, "man1")
	if err := os.MkdirAll(man, 0o755); err != nil {
		return fmt.Errorf("gendocs: %w", err)
	}
	for _, page := range manPages(app) {
		f, err := os.Create(filepath.Join(man, page.name+".1"))
		if err != nil {
			return fmt.Errorf("gendocs: %w", err)
		}
		err = page.write(f, version.Version, date)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("gendocs: man page %s: %w", page.name, err)
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

// docsDate is the date for the pages' footer: SOURCE_DATE_EPOCH when set
// (build.sh sets it to the last commit's time), else today.
func docsDate(epoch string) (time.Time, error) {
	if epoch == "" {
		return time.Now(), nil
	}
	sec, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("gendocs: SOURCE_DATE_EPOCH %q: not a number of seconds", epoch)
	}
	return time.Unix(sec, 0), nil
}

// manPages are lancelot(1) and one page per visible command.
func manPages(app *cli.App) []manPage {
	all := []string{"lancelot(1)"}
	for _, cmd := range app.VisibleCommands() {
		all = append(all, "lancelot-"+cmd.Name+"(1)")
	}
	main := manPage{
		name:     "lancelot",
		summary:  app.Usage,
		synopsis: "lancelot [--version] COMMAND [OPTIONS] [ARGUMENTS...]",
		description: "lancelot serves the Launcelot protocol: a client sends a question ending in '?', " +
			"and gets its answer, ending in '.'. One supervisor process owns the listening sockets and manages " +
			"N worker processes, each serving many clients at once; it replaces a crashed or hung worker, " +
			"reloads on HUP, upgrades its own binary on USR2 and scales on TTIN and TTOU without dropping a client.\n\n" +
			"Each command has its own page, lancelot-COMMAND(1), with its options. " +
			"The full reference is /usr/share/doc/lancelot/docs/reference.md.gz.",
		commands: app.VisibleCommands(),
		flags:    app.Flags,
		sections: []manSection{signalsSection(), filesSection(), exitSection(), environmentSection()},
		seeAlso:  append(all[1:], "systemctl(1)"),
	}
	pages := []manPage{main}
	for _, cmd := range app.VisibleCommands() {
		pages = append(pages, commandPage(cmd, all))
	}
	return pages
}

// commandPage is lancelot-COMMAND(1).
func commandPage(cmd *cli.Command, all []string) manPage {
	synopsis := "lancelot " + cmd.Name + " [OPTIONS]"
	if cmd.ArgsUsage != "" {
		synopsis += " " + cmd.ArgsUsage
	}
	desc := strings.ToUpper(cmd.Usage[:1]) + cmd.Usage[1:] + "."
	if cmd.Description != "" {
		desc += "\n\n" + strings.ReplaceAll(cmd.Description, "\n", " ")
	}
	var sections []manSection
	switch cmd.Name {
	case "serve":
		sections = append(sections, signalsSection(), filesSection())
	case "check":
		sections = append(sections, filesSection())
	case "reload", "upgrade", "status":
		sections = append(sections, manSection{title: "FILES", items: [][2]string{
			{defaultPIDFile, "the packaged service's pid file, the default of --pid-file"},
			{"@lancelot-admin-PID", "the supervisor's admin socket (abstract: no file on disk), " +
				"for its own user and root only, in its network namespace"},
		}})
	}
	sections = append(sections, exitSection())
	if cmd.Name == "serve" {
		sections = append(sections, environmentSection())
	} else {
		sections = append(sections, manSection{title: "ENVIRONMENT", intro: "lancelot " + cmd.Name + " reads no environment variable."})
	}
	var see []string
	for _, s := range all {
		if s != "lancelot-"+cmd.Name+"(1)" {
			see = append(see, s)
		}
	}
	return manPage{
		name: "lancelot-" + cmd.Name, summary: cmd.Usage, synopsis: synopsis, description: desc,
		flags: cmd.VisibleFlags(), sections: sections, seeAlso: see,
	}
}

func signalsSection() manSection {
	return manSection{title: "SIGNALS", intro: "Send these to the supervisor, the main process of lancelot.service " +
		"(systemctl kill --kill-whom=main) or the pid in --pid-file.", items: [][2]string{
		{"TERM, INT", "graceful stop: after --drain-delay, stop accepting, serve open connections until they close " +
			"or --shutdown-timeout passes, then exit 0"},
		{"QUIT", "immediate stop; workers still alive after 2 s are killed; exit 0"},
		{"HUP", "reload: read the command line and the config file again and replace every worker, one at a time " +
			"(lancelot reload does it and waits)"},
		{"USR2", "binary upgrade: the binary now on disk starts as a new supervisor and inherits every listening socket " +
			"(lancelot upgrade does it and waits)"},
		{"TTIN, TTOU", "one worker more (at most 1024), one fewer (at least one)"},
	}}
}

func filesSection() manSection {
	return manSection{title: "FILES", items: [][2]string{
		{"/etc/lancelot/lancelot.yaml", "the packaged service's config file (--config): keys are the long option names, plus answers:"},
		{defaultPIDFile, "the packaged service's pid file (--pid-file)"},
		{"/lib/systemd/system/lancelot.service, lancelot.socket", "the systemd units"},
		{"/usr/share/doc/lancelot/", "README, reference, operations guide, changelog"},
	}}
}

func exitSection() manSection {
	return manSection{title: "EXIT STATUS", items: [][2]string{
		{"0", "success (serve: stopped by TERM, INT or QUIT)"},
		{"1", "an error, printed as one line on standard error: a bad config file or value, an address in use, " +
			"a failed request, a pid that is not a lancelot supervisor"},
		{"2", "a command-line error (unknown command or option, missing or malformed value, conflicting arguments); nothing was done"},
		{"3", "reload, upgrade, status: no supervisor is running"},
	}}
}

func environmentSection() manSection {
	return manSection{title: "ENVIRONMENT", items: [][2]string{
		{"GOMAXPROCS", "a worker's share of the CPUs, instead of the CPUs the process may use divided by the workers"},
		{"NOTIFY_SOCKET, WATCHDOG_USEC", "set by systemd: where readiness notifications go, and the watchdog interval"},
		{"LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES", "set by systemd for socket activation: serve listens on those sockets"},
	}}
}
