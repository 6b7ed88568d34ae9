package main

// The upgrade handshake's corner cases, each against the real binary: a
// fake successor (a shell script speaking the handoff protocol) where the
// case needs one that misbehaves on purpose.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/cmd/internal/proc"
	"github.com/camelot/lancelot/shared/lancelottest"
	"github.com/camelot/lancelot/supervisor"
)

// installScript puts a shell script at bin, as a package upgrade would a
// binary.
func installScript(t *testing.T, bin, script string) {
	t.Helper()
	writeFile(t, bin+".new", script)
	if err := os.Chmod(bin+".new", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
}

// killPIDIn kills the process whose pid a fake successor wrote to path.
func killPIDIn(path string) {
	if pid := pidIn(path); pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// TestUpgradeAcceptTakenBack: a successor that was accepted but does not
// say "serving" within the serving timeout is taken back, and must never
// act on the accept afterwards. The fake successor ignores TERM and, a
// second after the timeout, writes its pid into the pid file, as a slow
// successor acting on its accept would. 0.3.0 sent it TERM and restored
// the pid file at once, which the fake then overwrote: the pid file named
// a process that was not serving, and systemd followed it.
func TestUpgradeAcceptTakenBack(t *testing.T) {
	bin := copyBinary(t)
	dir := t.TempDir()
	fakePID, pidFile := filepath.Join(dir, "fake.pid"), filepath.Join(dir, "lancelot.pid")
	saved := binPath
	binPath = bin
	s := launchServer(t, []string{"serve", "--listen", "", "--pid-file", pidFile, "--workers", "1"},
		[]string{"FAKE_PID=" + fakePID, "FAKE_PID_FILE=" + pidFile})
	binPath = saved
	s.pidFile = pidFile
	s.waitReady()
	t.Cleanup(func() { killPIDIn(fakePID) })
	l := startLoad(t, s.addr, 2, 2)
	l.waitExchanges(100)
	installScript(t, bin, `#!/bin/sh
echo $$ >"$FAKE_PID"
trap '' TERM
ch=$((3 + LANCELOT_UPGRADE_FDS))
printf 'hello 2 9.9.9\nready\n' >&$ch
read verdict <&$ch
sleep 11
echo $$ >"$FAKE_PID_FILE"
sleep 30
`)
	r := runCLI(t, time.Minute, "upgrade", "--pid-file", s.pidFile)
	if r.code == 0 || !strings.Contains(r.stderr, "did not take over within 10s") {
		t.Errorf("upgrade exited %d with %q; want a failure naming the serving timeout", r.code, r.stderr)
	}
	// Gone, it cannot act on the accept: the refusal waited for that.
	if pid := pidIn(fakePID); proc.Alive(pid) {
		t.Errorf("the accepted fake successor %d still runs after its refusal returned", pid)
		lancelottest.WaitFor(t, 5*time.Second, "the fake acting on its accept", func() bool { return s.pidFromFile() == pid })
	}
	if pid := s.pidFromFile(); pid != s.cmd.Process.Pid {
		t.Errorf("pid file names %d after the refusal, want the old supervisor %d", pid, s.cmd.Process.Pid)
	}
	l.waitExchanges(100)
	l.requireNoFailures()
}

// openFDs counts pid's open descriptors.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// TestRefusedUpgradesLeakNothing: each refused upgrade leaves the old
// supervisor with the descriptors it had (0.3.0 kept the successor's
// pidfd, one per refusal).
func TestRefusedUpgradesLeakNothing(t *testing.T) {
	const tries = 3
	bin := copyBinary(t)
	s := launchServerBinary(t, bin, "--workers", "1")
	waitQuiet(t, s.pidFile, 10*time.Second)
	before := openFDs(t, s.cmd.Process.Pid)
	installScript(t, bin, "#!/bin/sh\nprintf 'hello 9 9.0.0\\n' >&$((3 + LANCELOT_UPGRADE_FDS))\nexec sleep 30\n")
	for i := range tries {
		if r := runCLI(t, 30*time.Second, "upgrade", "--pid-file", s.pidFile); r.code == 0 || !strings.Contains(r.stderr, "protocol 9") {
			t.Fatalf("upgrade %d exited %d with %q; want the refusal of protocol 9", i+1, r.code, r.stderr)
		}
	}
	var after int
	if !pollUntil(5*time.Second, func() bool { after = openFDs(t, s.cmd.Process.Pid); return after <= before }) {
		t.Errorf("the old supervisor has %d descriptors after %d refused upgrades, %d before", after, tries, before)
	}
}

// TestUpgradeConfigErrorRefused: a successor whose configuration does not
// load tells its predecessor why before it exits, so the refusal (and
// `lancelot upgrade`) names the configuration error; 0.3.0's only said
// that the successor exited.
func TestUpgradeConfigErrorRefused(t *testing.T) {
	bin := copyBinary(t)
	config := filepath.Join(t.TempDir(), "lancelot.yaml")
	writeFile(t, config, "workers: 1\n")
	s := launchServerBinary(t, bin, "--config", config)
	l := startLoad(t, s.addr, 2, 2)
	l.waitExchanges(100)
	writeFile(t, config, "workers: 1\nno-such-setting: 3\n")
	r := runCLI(t, 30*time.Second, "upgrade", "--pid-file", s.pidFile)
	if r.code == 0 || !strings.Contains(r.stderr, "gave up") || !strings.Contains(r.stderr, "no-such-setting") {
		t.Errorf("upgrade exited %d with %q; want a failure with the new supervisor's configuration error", r.code, r.stderr)
	}
	if !strings.Contains(grepLines(s.logs.String(), `msg="binary upgrade refused; still serving"`), "no-such-setting") {
		t.Errorf("the refusal in the log does not name the configuration error:\n%s", grepLines(s.logs.String(), "binary upgrade"))
	}
	if pid := s.pidFromFile(); pid != s.cmd.Process.Pid {
		t.Errorf("pid file names %d, want the old supervisor %d", pid, s.cmd.Process.Pid)
	}
	l.waitExchanges(100)
	l.requireNoFailures()
}

// TestUpgradeDuringRollout: a USR2 that arrives while a reload adds
// workers (and binds their sockets) hands over every socket: the upgrade
// waits for the reload. 0.3.0 handed over the sockets of the moment, and
// the ones the reload bound after closed with the old supervisor,
// resetting their queues. The new supervisor starts with all three, and
// while the old one drains (a client holds it), every socket listening on
// the port is the new supervisor's. The new
// binary is a script that waits a second, then execs lancelot, so the
// reload is over before the successor could be ready, whichever way the
// scheduler goes.
func TestUpgradeDuringRollout(t *testing.T) {
	bin, real := copyBinary(t), copyBinary(t)
	config := filepath.Join(t.TempDir(), "lancelot.yaml")
	writeFile(t, config, "workers: 1\n")
	// The held client keeps the old supervisor draining (with handover
	// on it would move to the new one, and the old one exit at once).
	s := launchServerBinary(t, bin, "--config", config, "--shutdown-timeout", "1m", "--handover", "off")
	held := lancelottest.Dial(t, s.addr)
	held.Send(lancelottest.QName)
	held.Expect(lancelottest.AName)
	l := startLoad(t, s.addr, 2, 2)
	l.waitExchanges(100)
	installScript(t, bin, "#!/bin/sh\nsleep 1\nexec "+real+" \"$@\"\n")
	writeFile(t, config, "workers: 3\n")
	s.signal(syscall.SIGHUP)
	r := runCLI(t, time.Minute, "upgrade", "--pid-file", s.pidFile)
	if r.code != 0 {
		t.Fatalf("upgrade exited %d: %q", r.code, r.stderr)
	}
	logs := s.logs.String()
	if i, j := strings.Index(logs, `msg="binary upgrade requested"`), strings.Index(logs, `msg="rollout complete"`); i < 0 || j >= 0 && j < i {
		t.Fatalf("the upgrade was not requested during the reload; the test proves nothing:\n%s", grepLines(logs, "rollout", "upgrade"))
	}
	next := s.pidFromFile()
	st, err := statusOfPID(next)
	if err != nil {
		t.Fatal(err)
	}
	if st.Running != 3 || len(st.Sockets) != 3 {
		t.Errorf("the new supervisor runs %d workers on %d sockets; want 3 on 3", st.Running, len(st.Sockets))
	}
	// The sockets it started with are the ones it inherited.
	start := grepLines(s.logs.String(), fmt.Sprintf(`msg="supervisor starting" pid=%d `, next))
	if !strings.Contains(start, " sockets=3 ") {
		t.Errorf("the new supervisor inherited fewer sockets than the old one had after the reload (3): %s", start)
	}
	if !proc.Alive(s.cmd.Process.Pid) {
		t.Fatal("the old supervisor is gone: the held client should keep it draining")
	}
	theirs := socketInodes(next)
	for ino := range listeningInodes(t, s.port) {
		if !theirs[ino] {
			t.Errorf("socket %s listens on the port but the new supervisor does not hold it: it closes with the old one", ino)
		}
	}
	l.waitExchanges(1000)
	l.requireNoFailures()
	held.Conn.Close()
}

// TestUpgradePassesRequestsOn: TTIN and TTOU that reach the old supervisor
// while its upgrade is in flight wait for it, and the new supervisor
// carries out every one of them. The old one used to pass them on as
// signals, back to back, and the kernel merged those of a kind: three
// TTINs arrived as one, and the worker count drifted from what the
// operator asked for. The new binary is a script that waits a second, then
// execs lancelot, so the requests come while the upgrade is in flight.
func TestUpgradePassesRequestsOn(t *testing.T) {
	bin, real := copyBinary(t), copyBinary(t)
	s := launchServerBinary(t, bin, "--workers", "1")
	installScript(t, bin, "#!/bin/sh\nsleep 1\nexec "+real+" \"$@\"\n")
	s.signal(syscall.SIGUSR2)
	s.waitStatus("the upgrade in flight", func(st supervisor.Status) bool { return st.Upgrade })
	sent := map[string]uint64{}
	for _, sig := range []syscall.Signal{syscall.SIGTTIN, syscall.SIGTTIN, syscall.SIGTTIN, syscall.SIGTTOU} {
		name := strings.TrimPrefix(unix.SignalName(sig), "SIG")
		s.signal(sig)
		sent[name]++
		// Counted, still in the old supervisor: one signal at a time, so
		// that none of these merge on the way in.
		st := s.waitStatus(name+" counted", func(st supervisor.Status) bool { return st.Signals[name] == sent[name] })
		if !st.Upgrade || st.Running != 1 {
			t.Fatalf("after %s: upgrade in flight %v, running %d; want the request waiting for the upgrade (the test proves nothing)", name, st.Upgrade, st.Running)
		}
	}
	next := s.waitNewSupervisor()
	st := waitQuiet(t, s.pidFile, 20*time.Second)
	if st.PID != next || st.Running != 3 || len(st.Slots) != 3 {
		t.Errorf("the new supervisor %d runs %d workers in %d slots; want %d running 3 (1, three TTINs, one TTOU)", st.PID, st.Running, len(st.Slots), next)
	}
	if n := strings.Count(s.logs.String(), `msg="request passed on by the old supervisor"`); n != 4 {
		t.Errorf("the new supervisor logged %d requests passed on, want 4:\n%s", n, grepLines(s.logs.String(), "passed on"))
	}
	if err := s.wait(10 * time.Second); err != nil {
		t.Errorf("old supervisor exited with %v, want 0", err)
	}
}

// TestUpgradeTermDuringAccept: TERM reaches the old supervisor after it
// accepted its successor. The successor may already be writing the pid
// file and telling systemd MAINPID=: the old supervisor lets it take over
// and says nothing more to systemd, neither MAINPID=<itself> nor
// STOPPING=1 (0.3.0 took the accept back, restored MAINPID to itself and
// said STOPPING=1 on its way out, so systemd stopped a service whose new
// supervisor was taking over).
func TestUpgradeTermDuringAccept(t *testing.T) {
	ns := newNotifySocket(t)
	bin := copyBinary(t)
	fakePID := filepath.Join(t.TempDir(), "fake.pid")
	saved := binPath
	binPath = bin
	s := launchServer(t, []string{"serve", "--listen", "", "--pid-file", "", "--workers", "1"},
		[]string{"NOTIFY_SOCKET=" + ns.path, "FAKE_PID=" + fakePID})
	binPath = saved
	s.waitReady()
	t.Cleanup(func() { killPIDIn(fakePID) })
	ns.expect([]string{"READY=1"}, "STOPPING=1")
	installScript(t, bin, `#!/bin/sh
echo $$ >"$FAKE_PID"
trap '' TERM
ch=$((3 + LANCELOT_UPGRADE_FDS))
printf 'hello 2 9.9.9\nready\n' >&$ch
read verdict <&$ch
echo "$verdict" >"$FAKE_PID.verdict"
sleep 30
`)
	old := s.cmd.Process.Pid
	s.signal(syscall.SIGUSR2)
	s.waitFor(10*time.Second, "the fake successor's verdict", func() bool {
		b, _ := os.ReadFile(fakePID + ".verdict")
		return len(b) > 0
	})
	if b, _ := os.ReadFile(fakePID + ".verdict"); string(b) != "accept\n" {
		t.Fatalf("the fake successor read %q, want accept", b)
	}
	s.signal(syscall.SIGTERM)
	if err := s.wait(15 * time.Second); err != nil {
		t.Errorf("old supervisor: %v", err)
	}
	// Everything it sent is in the socket's queue by now.
	ns.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	for {
		buf := make([]byte, 4096)
		oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
		n, noob, _, _, err := ns.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			break
		}
		state := string(buf[:n])
		cmsgs, _ := unix.ParseSocketControlMessage(oob[:noob])
		if len(cmsgs) == 0 {
			continue
		}
		cred, _ := unix.ParseUnixCredentials(&cmsgs[0])
		if cred != nil && int(cred.Pid) == old && (hasLine(state, "STOPPING=1") || hasLine(state, "MAINPID=")) {
			t.Errorf("the old supervisor told systemd %q after it had accepted its successor", state)
		}
	}
	if !strings.Contains(s.logs.String(), "the accepted new supervisor takes over") {
		t.Errorf("the old supervisor did not log that the accepted successor takes over:\n%s", grepLines(s.logs.String(), "upgrade", "stopping"))
	}
}
