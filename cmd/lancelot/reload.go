package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/camelot/lancelot/shared/admin"
	"github.com/camelot/lancelot/shared/pidfile"
)

// reloadCommand is `lancelot reload`: HUP that waits. systemd's
// ExecReload= runs it, so `systemctl reload` returns only when every worker
// has been replaced; operators use it as they use `nginx -s reload`.
func reloadCommand() *cli.Command {
	return &cli.Command{
		Name:  "reload",
		Usage: "reload a running server (what HUP does) and wait until every worker has been replaced",
		Flags: append(supervisorFlags(),
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "give up waiting after this long (the reload goes on)"},
		),
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			return onSupervisor(c, c.Duration("timeout"), reload)
		},
	}
}

// supervisorFlags are how reload and status find the supervisor.
func supervisorFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "pid-file", Usage: "the server's --pid-file `FILE`"},
		&cli.IntFlag{Name: "pid", Usage: "the supervisor's `PID` (instead of --pid-file)"},
	}
}

// onSupervisor finds the supervisor the command's flags name and acts on
// it, for at most timeout.
func onSupervisor(c *cli.Context, timeout time.Duration, act func(ctx context.Context, pid int) error) error {
	pid, err := supervisorPID(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return act(ctx, pid)
}

// supervisorPID reads the pid from --pid or --pid-file.
func supervisorPID(c *cli.Context) (int, error) {
	pid, pidFile := c.Int("pid"), c.String("pid-file")
	switch {
	case pid > 0 && pidFile != "":
		return 0, fmt.Errorf("%s: give --pid or --pid-file, not both", c.Command.Name)
	case pid > 0:
		return pid, nil
	case pidFile == "":
		return 0, fmt.Errorf("%s: give --pid-file FILE (or --pid PID)", c.Command.Name)
	}
	pid, err := pidfile.Read(pidFile)
	if errors.Is(err, pidfile.ErrNoPID) {
		return 0, fmt.Errorf("%s: %s does not hold a pid", c.Command.Name, pidFile)
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", c.Command.Name, err)
	}
	return pid, nil
}

// reload asks the supervisor for a reload over its admin socket and waits
// for the outcome. A supervisor without one (a version from before it) gets
// a plain HUP, which cannot be confirmed.
func reload(ctx context.Context, pid int) error {
	_, err := admin.Do(ctx, pid, admin.CommandReload)
	if !errors.Is(err, admin.ErrNoAdminSocket) {
		if err != nil {
			return fmt.Errorf("reload of pid %d failed: %w", pid, err)
		}
		return nil
	}
	if kerr := syscall.Kill(pid, syscall.SIGHUP); kerr != nil {
		return fmt.Errorf("reload: pid %d: %w", pid, kerr)
	}
	fmt.Fprintf(os.Stderr, "lancelot: reload: sent HUP to pid %d, which has no admin socket: the outcome is not known\n", pid)
	return nil
}
