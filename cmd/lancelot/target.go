package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/cmd/internal/proc"
	"github.com/camelot/lancelot/shared/admin"
	"github.com/camelot/lancelot/shared/pidfile"
)

// defaultPIDFile is the packaged service's --pid-file (ExecStart= in
// configs/lancelot.service, under RuntimeDirectory=lancelot), so that
// reload, upgrade and status need no flag on a packaged install.
const defaultPIDFile = "/run/lancelot/lancelot.pid"

// supervisorFlags are how reload, upgrade and status find the supervisor.
func supervisorFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "pid-file", Value: defaultPIDFile, Usage: "the server's --pid-file `FILE`"},
		&cli.IntFlag{Name: "pid", Usage: "the supervisor's `PID` (instead of --pid-file)", DefaultText: "none"},
	}
}

// target is the supervisor a command acts on, checked to be one.
type target struct {
	pid     int
	pidFile string // "" when named by --pid
	// fd is a pidfd of the process that was checked: a signal sent
	// through it cannot reach another process that reused the pid.
	fd int
}

// close releases the pidfd.
func (t target) close() { unix.Close(t.fd) }

// signal sends sig to the checked process only.
func (t target) signal(sig syscall.Signal) error {
	if err := unix.PidfdSendSignal(t.fd, sig, nil, 0); err != nil {
		return fmt.Errorf("pid %d: %w", t.pid, err)
	}
	return nil
}

// onSupervisor finds the supervisor the command's flags name, checks it is
// one, and acts on it for at most timeout.
func onSupervisor(c *cli.Context, timeout time.Duration, act func(ctx context.Context, t target) error) error {
	t, err := findSupervisor(c)
	if err != nil {
		return err
	}
	defer t.close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return act(ctx, t)
}

// findSupervisor reads the pid from --pid or --pid-file and checks, before
// anything is sent to it, that it is a lancelot supervisor: a stale pid
// file may name any process.
func findSupervisor(c *cli.Context) (target, error) {
	name := c.Command.Name
	t := target{pid: c.Int("pid")}
	switch {
	case c.IsSet("pid") && c.IsSet("pid-file"):
		return t, usageErrorf("%s: give --pid or --pid-file, not both", name)
	case c.IsSet("pid") && t.pid <= 0:
		return t, usageErrorf("%s: --pid %d: want a process id", name, t.pid)
	case !c.IsSet("pid"):
		t.pidFile = c.String("pid-file")
		pid, err := readPIDFile(name, t.pidFile)
		if err != nil {
			return t, err
		}
		t.pid = pid
	}
	fd, err := unix.PidfdOpen(t.pid, 0)
	if err != nil {
		return t, gone(name, t)
	}
	t.fd = fd
	if err := checkSupervisor(name, t); err != nil {
		t.close()
		return t, err
	}
	return t, nil
}

// readPIDFile returns the pid a pid file holds.
func readPIDFile(name, path string) (int, error) {
	pid, err := pidfile.Read(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 0, notRunningf("%s: not running (no pid file %s)", name, path)
	case errors.Is(err, pidfile.ErrNoPID):
		return 0, fmt.Errorf("%s: %s does not hold a pid", name, path)
	case err != nil:
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return pid, nil
}

// checkByAdminSocket identifies t's process by the admin socket that bears
// its pid: only a lancelot supervisor answers status there, with its own
// pid.
func checkByAdminSocket(name string, t target) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	raw, err := admin.Do(ctx, t.pid, admin.CommandStatus)
	if err != nil {
		return fmt.Errorf("%s: pid %d is hidden from /proc here and has no lancelot admin socket (%v): not signalled", name, t.pid, err)
	}
	if st, err := decodeStatus(raw); err != nil || st.PID != t.pid {
		return fmt.Errorf("%s: pid %d is hidden from /proc here and its admin socket did not answer as lancelot: not signalled", name, t.pid)
	}
	return nil
}

// gone is the error for a pid that no process has.
func gone(name string, t target) error {
	if t.pidFile != "" {
		return notRunningf("%s: not running (%s names pid %d, which is gone)", name, t.pidFile, t.pid)
	}
	return notRunningf("%s: not running (no process %d)", name, t.pid)
}

// checkSupervisor checks that t's process is a lancelot supervisor and, with
// a pid file, that it did not start after the file was written (a pid
// reused by another lancelot).
func checkSupervisor(name string, t target) error {
	id, err := proc.Identify(t.pid)
	alive := unix.PidfdSendSignal(t.fd, 0, nil, 0) == nil
	if err != nil && alive {
		// Alive, yet not in /proc: hidden from this process, as the
		// packaged unit's ExecReload= is from its main process
		// (ProtectProc=invisible, and each process of the unit in a user
		// namespace of its own). Its admin socket, named by its pid,
		// tells what it is.
		return checkByAdminSocket(name, t)
	}
	// The pidfd still names a live process: the pid was not reused while
	// /proc was read, so what was read is that process.
	if err != nil || !alive {
		return gone(name, t)
	}
	if !id.Supervisor() {
		return fmt.Errorf("%s: pid %d is %s, not a lancelot supervisor", name, t.pid, describe(id))
	}
	if t.pidFile == "" || id.Started.IsZero() {
		return nil
	}
	fi, err := os.Stat(t.pidFile)
	// A supervisor writes its pid file once ready, after it started; the
	// start time read from /proc may be up to 1 s early (the boot time is
	// in whole seconds), never late, so 1 s of slack is for clock steps.
	if err == nil && id.Started.After(fi.ModTime().Add(time.Second)) {
		return fmt.Errorf("%s: pid %d started at %s, after %s was written (%s): the pid file is stale",
			name, t.pid, id.Started.Format(time.RFC3339), t.pidFile, fi.ModTime().Format(time.RFC3339))
	}
	return nil
}

// describe names what a process runs, for the line that refuses it.
func describe(id proc.Identity) string {
	if id.Lancelot && len(id.Args) > 1 {
		return "a lancelot " + id.Args[1]
	}
	if id.Lancelot {
		return "lancelot"
	}
	return id.Program
}

// noAdminSocket reports whether err says that nothing listens on the
// supervisor's admin socket, as with a release before 0.3.0: the one case
// where a command falls back to a signal. Any other failure (a refused
// peer, a full backlog, a timeout) is reported, and nothing is sent.
func noAdminSocket(err error) bool {
	return errors.Is(err, admin.ErrNoAdminSocket) && errors.Is(err, syscall.ECONNREFUSED)
}

// positiveTimeout returns the command's --timeout, which must be positive.
func positiveTimeout(c *cli.Context) (time.Duration, error) {
	d := c.Duration("timeout")
	if d <= 0 {
		return 0, usageErrorf("%s: --timeout %v: want a positive duration", c.Command.Name, d)
	}
	return d, nil
}
