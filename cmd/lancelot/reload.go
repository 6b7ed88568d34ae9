package main

import (
	"context"
	"fmt"
	"os"
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
		Flags: append(supervisorFlags(),
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "give up waiting after `DURATION` (the reload goes on)"},
		),
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			timeout, err := positiveTimeout(c)
			if err != nil {
				return err
			}
			return onSupervisor(c, timeout, reload)
		},
	}
}

// reload asks the supervisor for a reload over its admin socket and waits
// for the outcome. A supervisor without one (a release before 0.3.0) gets
// a plain HUP, which cannot be confirmed; any other failure to reach the
// socket is reported, and nothing is sent.
func reload(ctx context.Context, t target) error {
	_, err := admin.Do(ctx, t.pid, admin.CommandReload)
	switch {
	case err == nil:
		return nil
	case !noAdminSocket(err):
		return fmt.Errorf("reload of pid %d failed: %w", t.pid, waitErr(ctx, err))
	}
	if err := t.signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	fmt.Fprintf(os.Stderr, "lancelot: reload: sent HUP to pid %d, which has no admin socket: the outcome is not known\n", t.pid)
	return nil
}
