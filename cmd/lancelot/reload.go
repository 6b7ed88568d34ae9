package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/camelot/lancelot/shared/admin"
)

// reloadCommand is `lancelot reload`: HUP that waits. systemd's
// ExecReload= runs it, so `systemctl reload` returns only when every worker
// has been replaced; operators use it as they use `nginx -s reload`.
func reloadCommand() *cli.Command {
	return &cli.Command{
		Name:  "reload",
		Usage: "reload a running server (what HUP does) and wait until every worker has been replaced",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "pid-file", Usage: "the server's --pid-file `FILE`"},
			&cli.IntFlag{Name: "pid", Usage: "the supervisor's `PID` (instead of --pid-file)"},
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "give up waiting after this long (the reload goes on)"},
		},
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			pid, err := supervisorPID(c.String("pid-file"), c.Int("pid"))
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), c.Duration("timeout"))
			defer cancel()
			return reload(ctx, pid)
		},
	}
}

// supervisorPID reads the pid to reload from --pid or --pid-file.
func supervisorPID(pidFile string, pid int) (int, error) {
	switch {
	case pid > 0 && pidFile != "":
		return 0, errors.New("reload: give --pid or --pid-file, not both")
	case pid > 0:
		return pid, nil
	case pidFile == "":
		return 0, errors.New("reload: give --pid-file FILE (or --pid PID)")
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, fmt.Errorf("reload: %w", err)
	}
	pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("reload: %s does not hold a pid", pidFile)
	}
	return pid, nil
}

// reload asks the supervisor for a reload over its admin socket and waits
// for the outcome. A supervisor without one (a version from before it) gets
// a plain HUP, which cannot be confirmed.
func reload(ctx context.Context, pid int) error {
	err := admin.Do(ctx, pid, admin.CommandReload)
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
