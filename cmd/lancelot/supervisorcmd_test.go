package main

// reload, upgrade and status find the supervisor by pid file or pid, and
// act on nothing else; the command line's exit statuses.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/camelot/lancelot/cmd/internal/proc"
	"github.com/camelot/lancelot/shared/lancelottest"
)

// startSleep starts `sleep 300`, killed by pid when the test ends.
func startSleep(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Start returns once forked: wait for sleep's own command line.
	lancelottest.WaitFor(t, 5*time.Second, "sleep exec'd", func() bool {
		args := proc.Cmdline(cmd.Process.Pid)
		return len(args) > 0 && args[0] == "sleep"
	})
	return cmd.Process.Pid
}

// checkRefused checks a run that must fail with status code and one line
// on stderr containing want.
func checkRefused(t *testing.T, args []string, r cliResult, code int, want string) {
	t.Helper()
	line := strings.TrimSuffix(r.stderr, "\n")
	if r.code != code || r.stdout != "" || line == "" || strings.Contains(line, "\n") || !strings.Contains(line, want) {
		t.Errorf("lancelot %q: exit %d, stdout %q, stderr %q; want exit %d and one line with %q", args, r.code, r.stdout, r.stderr, code, want)
	}
}

// TestSupervisorCommandsRefuseStrangers: a stale pid file, or --pid, naming
// a process that is not a lancelot supervisor (sleep, a lancelot worker, a
// supervisor that started after the pid file was written) makes reload,
// upgrade and status exit 1 with one line saying what the pid is, and
// nothing is signalled: sleep dies of a HUP or USR2, and the supervisor
// counts every signal and reload it gets.
func TestSupervisorCommandsRefuseStrangers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sleep := startSleep(t)
	s := startServer(t, "--workers", "1")
	worker := s.workerPIDs()[0]
	pidFile := func(name string, pid int) string {
		path := filepath.Join(dir, name)
		writeFile(t, path, strconv.Itoa(pid)+"\n")
		return path
	}
	sleepFile, workerFile := pidFile("sleep.pid", sleep), pidFile("worker.pid", worker)
	// The supervisor's pid in a file written before it started: its pid
	// reused since the file was written.
	old := pidFile("old.pid", s.cmd.Process.Pid)
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"reload", "upgrade", "status"} {
		for _, tc := range []struct {
			naming []string
			want   string
		}{
			{[]string{"--pid-file", sleepFile}, fmt.Sprintf("pid %d is sleep, not a lancelot supervisor", sleep)},
			{[]string{"--pid", strconv.Itoa(sleep)}, fmt.Sprintf("pid %d is sleep, not a lancelot supervisor", sleep)},
			{[]string{"--pid-file", workerFile}, fmt.Sprintf("pid %d is a lancelot worker, not a lancelot supervisor", worker)},
			{[]string{"--pid", strconv.Itoa(worker)}, fmt.Sprintf("pid %d is a lancelot worker, not a lancelot supervisor", worker)},
			{[]string{"--pid-file", old}, "the pid file is stale"},
		} {
			args := append([]string{cmd}, tc.naming...)
			checkRefused(t, args, runCLI(t, 10*time.Second, args...), 1, tc.want)
			if !proc.Alive(sleep) {
				t.Fatalf("lancelot %q: sleep (pid %d) was signalled", args, sleep)
			}
		}
	}
	st := s.status()
	if len(st.Signals) != 0 || st.Upgrade || !sameSet(s.workerPIDs(), []int{worker}) {
		t.Errorf("supervisor after the refused commands: signals %v, upgrade %v, workers %v; want none, false, [%d]",
			st.Signals, st.Upgrade, s.workerPIDs(), worker)
	}
}

// TestSupervisorCommandsNotRunning: with no supervisor running (no pid
// file, a pid file naming a pid that is gone, --pid of nothing), reload,
// upgrade and status say "not running" in one line and exit 3.
func TestSupervisorCommandsNotRunning(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	gonePID := done.Process.Pid
	goneFile := filepath.Join(dir, "gone.pid")
	writeFile(t, goneFile, strconv.Itoa(gonePID)+"\n")
	for _, cmd := range []string{"reload", "upgrade", "status"} {
		for _, tc := range []struct {
			naming []string
			want   string
		}{
			{[]string{"--pid-file", filepath.Join(dir, "missing.pid")}, "not running (no pid file " + filepath.Join(dir, "missing.pid") + ")"},
			{[]string{"--pid-file", goneFile}, fmt.Sprintf("not running (%s names pid %d, which is gone)", goneFile, gonePID)},
			{[]string{"--pid", strconv.Itoa(gonePID)}, fmt.Sprintf("not running (no process %d)", gonePID)},
		} {
			args := append([]string{cmd}, tc.naming...)
			checkRefused(t, args, runCLI(t, 10*time.Second, args...), 3, tc.want)
		}
	}
}

// TestCommandLineExitStatus: an error in the command line (unknown flag,
// missing value, conflicting arguments, --timeout 0) exits 2 with one line
// naming flags as --flag, and does nothing: a live supervisor gets no
// signal. Other errors exit 1.
func TestCommandLineExitStatus(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--workers", "1")
	before := s.workerPIDs()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		// Usage errors
		{[]string{"serve", "--workers"}, 2, "flag needs an argument: --workers"},
		{[]string{"serve", "--bogus"}, 2, "flag provided but not defined: --bogus"},
		{[]string{"serve", "--workers", "many"}, 2, `invalid value "many" for flag --workers`},
		{[]string{"serve", "127.0.0.1", "127.0.0.2"}, 2, "one INTERFACE at most"},
		{[]string{"check", "--listen", "127.0.0.1:1", "127.0.0.1"}, 2, "give INTERFACE or --listen, not both"},
		{[]string{"check", "--no-such-flag"}, 2, "--no-such-flag"},
		{[]string{"bench", "--connections"}, 2, "--connections"},
		{[]string{"reload", "--pid-file", s.pidFile, "--timeout", "0"}, 2, "--timeout 0s: want a positive duration"},
		{[]string{"upgrade", "--pid-file", s.pidFile, "--timeout", "0"}, 2, "--timeout 0s: want a positive duration"},
		{[]string{"reload", "--pid-file", s.pidFile, "--pid", strconv.Itoa(s.cmd.Process.Pid)}, 2, "give --pid or --pid-file, not both"},
		{[]string{"status", "--pid", "-3"}, 2, "--pid -3"},
		// Other errors
		{[]string{"check", "--workers", "0"}, 1, "--workers 0"},
	} {
		checkRefused(t, tc.args, runCLI(t, 10*time.Second, tc.args...), tc.code, tc.want)
	}
	st := s.status()
	if len(st.Signals) != 0 || st.Upgrade || !sameSet(s.workerPIDs(), before) {
		t.Errorf("supervisor after the usage errors: signals %v, upgrade %v, workers %v; want none, false, %v",
			st.Signals, st.Upgrade, s.workerPIDs(), before)
	}
}

// TestHelpTexts: every command's --help names each flag's value by what it
// is (N, DURATION, ADDR, FILE...), never `value`, and gives at most one
// default per flag.
func TestHelpTexts(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"serve", "check", "reload", "upgrade", "status", "ask", "bench", "version"} {
		r := runCLI(t, 10*time.Second, cmd, "--help")
		if r.code != 0 || !strings.Contains(r.stdout, "OPTIONS") {
			t.Errorf("lancelot %s --help: exit %d, stdout %q", cmd, r.code, r.stdout)
			continue
		}
		for _, line := range strings.Split(r.stdout, "\n") {
			if strings.Contains(line, " value ") || strings.HasSuffix(line, " value") || strings.Count(line, "default") > 1 {
				t.Errorf("lancelot %s --help: %q: want a named placeholder and one default", cmd, strings.TrimSpace(line))
			}
		}
	}
}

// TestStatusJSONFields: `status --json` has every field docs/reference.md
// says is always there, and no field the doc does not name.
func TestStatusJSONFields(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--workers", "1")
	s.waitQuiet()
	r := runCLI(t, 10*time.Second, "status", "--pid-file", s.pidFile, "--json")
	var st map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &st); r.code != 0 || err != nil {
		t.Fatalf("status --json: exit %d, %v, %q", r.code, err, r.stdout)
	}
	always := []string{"pid", "version", "state", "running", "configured", "queued", "upgrade", "uptime_seconds", "slots", "sockets", "retiring", "signals", "restarts"}
	documented := append(always, "started", "config_file", "rollout", "successor")
	keys := func(m map[string]any) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		return out
	}
	checkKeys := func(what string, m map[string]any, always, documented []string) {
		for _, k := range always {
			if _, ok := m[k]; !ok {
				t.Errorf("%s lacks %q: %v", what, k, keys(m))
			}
		}
		for k := range m {
			if !slices.Contains(documented, k) {
				t.Errorf("%s has %q, which docs/reference.md does not list", what, k)
			}
		}
	}
	checkKeys("status", st, always, documented)
	slots, _ := st["slots"].([]any)
	sockets, _ := st["sockets"].([]any)
	if len(slots) != 1 || len(sockets) != 1 {
		t.Fatalf("status --json: slots %v, sockets %v; want one of each", st["slots"], st["sockets"])
	}
	slotAlways := []string{"slot", "pid", "ready", "state", "version", "home", "serving", "lent", "restarts", "uptime_seconds",
		"connections", "answered", "questions_per_second", "handed_over"}
	checkKeys("a slot", slots[0].(map[string]any), slotAlways, append(slotAlways, "started", "next"))
	checkKeys("a socket", sockets[0].(map[string]any), []string{"id", "addr", "served_by"}, []string{"id", "addr", "served_by", "retiring"})
}
