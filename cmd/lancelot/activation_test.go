package main

// Socket activation across upgrades: the addresses systemd passed stay the
// socket unit's, whichever supervisor holds them, however many upgrades
// and reloads later.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/camelot/lancelot/cmd/internal/proc"
	"github.com/camelot/lancelot/shared/lancelottest"
)

// activatedService is lancelot under systemd-socket-activate on one port,
// with a configuration file that lists another address: a supervisor that
// forgot its sockets are systemd's would bind that one on a reload, and
// retire systemd's.
type activatedService struct {
	a                *activated
	bin              string // the binary at the path the service runs
	addr, configured string
	configuredPort   int
	pidFile          string
}

func startActivatedService(t *testing.T, activate, first string) *activatedService {
	t.Helper()
	dir := t.TempDir()
	s := &activatedService{bin: filepath.Join(dir, "lancelot"), pidFile: filepath.Join(dir, "lancelot.pid")}
	install(t, first, s.bin)
	port := lancelottest.FreePort(t)
	s.addr = "127.0.0.1:" + strconv.Itoa(port)
	s.configuredPort = lancelottest.FreePort(t)
	s.configured = "127.0.0.1:" + strconv.Itoa(s.configuredPort)
	config := filepath.Join(dir, "lancelot.yaml")
	writeFile(t, config, "listen: "+s.configured+"\n")
	saved := binPath
	binPath = s.bin
	s.a = startActivated(t, activate, s.addr, "serve", "--workers", "2", "--pid-file", s.pidFile, "--config", config)
	binPath = saved
	t.Cleanup(func() {
		if pid := pidIn(s.pidFile); pid != s.a.cmd.Process.Pid {
			killSupervisor(pid)
		}
	})
	lancelottest.WaitFor(t, 20*time.Second, "systemd-socket-activate listening", func() bool { return listeningSockets(t, port) == 1 })
	if err := firstAnswer(s.addr); err != nil {
		t.Fatalf("%s: %v", s.addr, err)
	}
	lancelottest.WaitFor(t, 10*time.Second, "pid file", func() bool { return pidIn(s.pidFile) > 0 })
	return s
}

// firstAnswer is the first client of a socket-activated service: its
// connection starts the service, which it waits for.
func firstAnswer(addr string) error {
	got, err := lancelottest.AskOnce(addr, lancelottest.QName, 30*time.Second)
	if err == nil && got != lancelottest.AName {
		err = fmt.Errorf("answered %q", got)
	}
	return err
}

// pidIn reads a pid file; 0 when there is none.
func pidIn(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// upgradeTo installs binary and upgrades the service to it.
func (s *activatedService) upgradeTo(t *testing.T, step, binary string) {
	t.Helper()
	install(t, binary, s.bin)
	old := pidIn(s.pidFile)
	r := runCLI(t, time.Minute, "upgrade", "--pid-file", s.pidFile)
	if r.code != 0 || pidIn(s.pidFile) == old {
		t.Fatalf("%s: upgrade exited %d (%q); pid file names %d, was %d\n%s", step, r.code, r.stderr, pidIn(s.pidFile), old, s.a.logs)
	}
	if err := answers(s.addr); err != nil {
		t.Errorf("%s: %s: %v", step, s.addr, err)
	}
	// The old supervisor has no clients left: it is gone at once, and
	// the next successor sees only the one it takes over from.
	lancelottest.WaitFor(t, 20*time.Second, step+": the old supervisor gone", func() bool { return !proc.Alive(old) })
}

// reloadKeepsActivated reloads the service and checks the reload kept the
// socket unit's address and bound nothing of its own.
func (s *activatedService) reloadKeepsActivated(t *testing.T) {
	t.Helper()
	before := strings.Count(s.a.logs.String(), "belong to the socket unit (socket activation)")
	r := runCLI(t, time.Minute, "reload", "--pid-file", s.pidFile)
	if r.code != 0 {
		t.Fatalf("reload exited %d: %q", r.code, r.stderr)
	}
	if err := answers(s.addr); err != nil {
		t.Errorf("the activated address %s after the reload: %v", s.addr, err)
	}
	if n := listeningSockets(t, s.configuredPort); n != 0 {
		t.Errorf("the reload bound %d sockets on the configured %s; want none (the addresses are the socket unit's)", n, s.configured)
	}
	st := waitQuiet(t, s.pidFile, 10*time.Second)
	if n := socketsByAddr(st); len(n) != 1 || n[s.addr] == 0 {
		t.Errorf("after the reload the supervisor listens on %v; want only %s", n, s.addr)
	}
	requireEverySocketServed(t, st)
	if n := strings.Count(s.a.logs.String(), "belong to the socket unit (socket activation)") - before; n != 1 {
		t.Errorf("the reload logged %d lines saying the addresses are the socket unit's; want 1", n)
	}
}

// TestSocketActivationSurvivesUpgrades: socket-activated, then upgraded
// twice (a successor's successor), then reloaded: the reload keeps the
// activated address and binds nothing, where 0.3.0's successor bound the
// configured address and retired systemd's.
func TestSocketActivationSurvivesUpgrades(t *testing.T) {
	activate := requireTool(t, "systemd-socket-activate")
	s := startActivatedService(t, activate, binPath)
	s.upgradeTo(t, "first upgrade", binPath)
	s.upgradeTo(t, "second upgrade", binPath)
	s.reloadKeepsActivated(t)
	if !strings.Contains(s.a.logs.String(), "the old supervisor said which sockets are systemd's") {
		t.Errorf("no successor logged that its predecessor said which sockets are systemd's:\n%s", s.a.logs)
	}
}

// TestSocketActivationFromRelease030: a socket-activated 0.3.0 does not
// say which sockets are systemd's; this build tells from 0.3.0's
// environment (LISTEN_FDS), and passes it on to a 0.3.0 successor (whose
// environment then carries it) and that one's successor: after 0.3.0 →
// this → 0.3.0 → this, a reload keeps the activated address.
func TestSocketActivationFromRelease030(t *testing.T) {
	activate := requireTool(t, "systemd-socket-activate")
	release, commit := releaseBefore(t, "0.4.0")
	prev := buildRelease(t, release, commit)
	s := startActivatedService(t, activate, prev)
	s.upgradeTo(t, release+" → this build", binPath)
	s.upgradeTo(t, "this build → "+release, prev)
	s.upgradeTo(t, release+" → this build again", binPath)
	s.reloadKeepsActivated(t)
	logs := s.a.logs.String()
	for _, want := range []string{"was started by socket activation (LISTEN_FDS=1", "was told by its own predecessor that sockets 0"} {
		if !strings.Contains(logs, want) {
			t.Errorf("no successor logged %q:\n%s", want, logs)
		}
	}
}
