package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/camelot/lancelot/shared/admin"
	"github.com/camelot/lancelot/supervisor"
)

// statusCommand is `lancelot status`: the supervisor's state, from its
// admin socket.
func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show a running server's workers, sockets and rollouts",
		Flags: append(supervisorFlags(),
			&cli.BoolFlag{Name: "json", Usage: "print the state as one JSON object"},
		),
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			return onSupervisor(c, 5*time.Second, func(ctx context.Context, t target) error {
				return showStatus(ctx, c.App.Writer, t.pid, c.Bool("json"))
			})
		},
	}
}

// showStatus prints pid's status: as the admin socket gives it (JSON), or
// as text.
func showStatus(ctx context.Context, w io.Writer, pid int, asJSON bool) error {
	raw, err := admin.Do(ctx, pid, admin.CommandStatus)
	if noAdminSocket(err) {
		return fmt.Errorf("status: pid %d is a lancelot supervisor without an admin socket "+
			"(a release before 0.3.0, or another network namespace): it cannot tell its state", pid)
	}
	if err != nil {
		return fmt.Errorf("status of pid %d: %w", pid, waitErr(ctx, err))
	}
	if asJSON {
		fmt.Fprintln(w, raw)
		return nil
	}
	st, err := decodeStatus(raw)
	if err != nil {
		return fmt.Errorf("status of pid %d: %w", pid, err)
	}
	printStatus(w, st)
	return nil
}

// decodeStatus reads the admin socket's status payload.
func decodeStatus(raw string) (supervisor.Status, error) {
	var st supervisor.Status
	err := json.Unmarshal([]byte(raw), &st)
	return st, err
}

func printStatus(w io.Writer, st supervisor.Status) {
	fmt.Fprintf(w, "supervisor %d (lancelot %s, revision %.12s): %s, %d workers (configured %d)",
		st.PID, st.Version.Version, st.Version.Revision, st.State, st.Running, st.Configured)
	if st.Rollout != "" {
		fmt.Fprintf(w, ", %s in progress", st.Rollout)
	}
	if st.Upgrade {
		fmt.Fprint(w, ", binary upgrade in progress")
		if st.Successor != 0 {
			fmt.Fprintf(w, " (new supervisor pid %d)", st.Successor)
		}
	}
	fmt.Fprintln(w)
	for _, sl := range st.Slots {
		state := "ready"
		switch {
		case sl.PID == 0:
			state = "restarting"
		case !sl.Ready:
			state = "starting"
		}
		fmt.Fprintf(w, "  slot %d: pid %d %s", sl.Slot, sl.PID, state)
		if sl.Version != "" {
			fmt.Fprintf(w, ", lancelot %s", sl.Version)
		}
		fmt.Fprintf(w, ", sockets %v", sl.Serving)
		if sl.Next != 0 {
			fmt.Fprintf(w, ", replacement pid %d starting", sl.Next)
		}
		fmt.Fprintln(w)
	}
	for _, sock := range st.Sockets {
		closing := ""
		if sock.Retiring {
			closing = " (address removed: closing)"
		}
		fmt.Fprintf(w, "  socket %d %s: served by %s%s\n", sock.ID, sock.Addr, pidList(sock.ServedBy), closing)
	}
	if len(st.Retiring) > 0 {
		fmt.Fprintf(w, "  draining: %s\n", pidList(st.Retiring))
	}
}

func pidList(pids []int) string {
	if len(pids) == 0 {
		return "nobody"
	}
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, ", ")
}
