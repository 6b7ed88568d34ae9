package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/camelot/lancelot/cmd/internal/proc"
	"github.com/camelot/lancelot/shared/admin"
	"github.com/camelot/lancelot/shared/pidfile"
	"github.com/camelot/lancelot/supervisor"
)

// upgradeCommand is `lancelot upgrade`: USR2 that waits, as `lancelot
// reload` is HUP that waits. It exits 0 only once the new supervisor has
// taken over.
func upgradeCommand() *cli.Command {
	return &cli.Command{
		Name:  "upgrade",
		Usage: "upgrade a running server to the binary now on disk (what USR2 does) and wait until the new one took over",
		Description: "Exits 0 once the new supervisor serves: the old one accepted it, its workers are ready and the pid\n" +
			"file names it. Otherwise prints why (refused, exited, timed out, another upgrade in flight) and exits 1;\n" +
			"the old supervisor keeps serving. Works with release 0.2.0 too, which has no admin socket.",
		Flags: append(supervisorFlags(),
			&cli.DurationFlag{Name: "timeout", Value: 2 * time.Minute, Usage: "give up waiting after this long"},
		),
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			return onSupervisor(c, c.Duration("timeout"), func(ctx context.Context, pid int) error {
				next, err := upgrade(ctx, pid, c.String("pid-file"))
				if err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "upgraded: supervisor %d took over from %d\n", next, pid)
				return nil
			})
		},
	}
}

// upgrade asks the supervisor for a binary upgrade and waits until its
// successor has taken over; it returns the successor's pid.
func upgrade(ctx context.Context, pid int, pidFile string) (int, error) {
	raw, err := admin.Do(ctx, pid, admin.CommandUpgrade)
	if errors.Is(err, admin.ErrNoAdminSocket) {
		return legacyUpgrade(ctx, pid, pidFile)
	}
	if err != nil {
		return 0, fmt.Errorf("upgrade of pid %d failed: %w", pid, waitErr(ctx, err))
	}
	next, err := strconv.Atoi(raw)
	if err != nil || next <= 0 {
		return 0, fmt.Errorf("upgrade of pid %d: unexpected answer %q", pid, raw)
	}
	return next, waitTakenOver(ctx, next, pidFile)
}

// waitErr names a timeout as one.
func waitErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("timed out: %w", ctx.Err())
	}
	return err
}

// waitTakenOver waits until the successor's workers are all ready and the
// pid file, when there is one, names it. A successor without an admin
// socket (release 0.2.0) was accepted only once all its workers were
// ready, so the pid file is all there is to wait for.
func waitTakenOver(ctx context.Context, next int, pidFile string) error {
	for {
		named := pidFile == "" || readPID(pidFile) == next
		st, err := statusOfSupervisor(ctx, next)
		switch {
		case !proc.Alive(next):
			return fmt.Errorf("upgrade: the new supervisor %d exited after it took over", next)
		case named && errors.Is(err, admin.ErrNoAdminSocket):
			return nil
		case named && err == nil && st.State == "serving" && allReady(st):
			return nil
		}
		if err := pause(ctx); err != nil {
			return fmt.Errorf("upgrade: new supervisor %d: timed out waiting for its workers and the pid file", next)
		}
	}
}

func allReady(st supervisor.Status) bool {
	for _, sl := range st.Slots {
		if !sl.Ready {
			return false
		}
	}
	return len(st.Slots) > 0
}

// legacyUpgrade upgrades a supervisor without an admin socket (release
// 0.2.0): USR2, then watch for the new supervisor, a child of the old one
// running serve, and the pid file.
func legacyUpgrade(ctx context.Context, pid int, pidFile string) (int, error) {
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		return 0, fmt.Errorf("upgrade: pid %d: %w", pid, err)
	}
	seen := 0
	for {
		if c := proc.ChildRunning(pid, "serve"); c != 0 {
			seen = c
		}
		switch next := readPID(pidFile); {
		case next != 0 && next != pid && proc.Alive(next):
			return next, nil
		case pidFile == "" && seen != 0 && !proc.Alive(pid):
			return seen, nil
		case seen != 0 && !proc.Alive(seen):
			return 0, fmt.Errorf("upgrade of pid %d failed: the new supervisor %d exited; the old one still serves", pid, seen)
		case !proc.Alive(pid):
			return 0, fmt.Errorf("upgrade of pid %d failed: it exited", pid)
		}
		if err := pause(ctx); err != nil {
			return 0, fmt.Errorf("upgrade of pid %d: timed out waiting for a new supervisor to take over", pid)
		}
	}
}

// readPID returns the pid a pid file names, or 0.
func readPID(path string) int {
	if path == "" {
		return 0
	}
	pid, _ := pidfile.Read(path)
	return pid
}

// statusOfSupervisor asks a supervisor for its state.
func statusOfSupervisor(ctx context.Context, pid int) (supervisor.Status, error) {
	raw, err := admin.Do(ctx, pid, admin.CommandStatus)
	if err != nil {
		return supervisor.Status{}, err
	}
	return decodeStatus(raw)
}

// pause waits a little, or returns ctx's error.
func pause(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(20 * time.Millisecond):
		return nil
	}
}
