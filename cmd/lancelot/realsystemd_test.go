package main

// TestRealSystemd runs lancelot under a real systemd: systemd 252 (Debian 12)
// as PID 1 of a systemd-nspawn container that docs/systemd/nspawn.sh boots.
// The binary and configs/lancelot.{service,socket} are installed the way
// docs/operations.md tells users, and every case runs with a `lancelot bench`
// load inside the container whose failures are counted. systemd_test.go
// checks what lancelot sends; this checks what systemd makes of it.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/camelot/lancelot/cmd/internal/loadgen"
	"github.com/camelot/lancelot/shared/lancelottest"
	"github.com/camelot/lancelot/shared/version"
)

const (
	// nspawnScript boots and runs the container (relative to this package).
	nspawnScript = "../../docs/systemd/nspawn.sh"
	// realSystemdHowTo is how to run TestRealSystemd.
	realSystemdHowTo = "run as root, after `apt-get install debootstrap systemd-container`: " +
		"LANCELOT_SYSTEMD_NSPAWN=1 go test -run TestRealSystemd ./cmd/lancelot"
	unitName = "lancelot.service"
)

func TestRealSystemd(t *testing.T) {
	if os.Getenv("LANCELOT_SYSTEMD_NSPAWN") != "1" {
		t.Skip("needs systemd as PID 1 of a container; " + realSystemdHowTo)
	}
	if os.Geteuid() != 0 {
		t.Fatal("LANCELOT_SYSTEMD_NSPAWN=1 but not root; " + realSystemdHowTo)
	}
	for _, tool := range []string{"bash", "debootstrap", "systemd-nspawn", "nsenter", "setsid", "flock"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found; %s", tool, realSystemdHowTo)
		}
	}
	began := time.Now()
	c := bootContainer(t)
	t.Logf("container booted in %v (nspawn pid %d, container PID 1 = host pid %d)", time.Since(began).Round(time.Millisecond), c.nspawn, c.pid1)
	c.install(t, binPath)

	// Every case but DeniedCallLogged also fails on a refusal in the
	// unit's journal (runCase).
	c.runCase(t, "SocketActivation", c.testSocketActivation)
	c.runCase(t, "Hardening", c.testHardening)
	c.runCase(t, "Status", c.testStatus)
	c.runCase(t, "SocketPerWorker", c.testSocketPerWorker)
	c.runCase(t, "Reload", c.testReload)
	c.runCase(t, "Upgrade", c.testUpgrade)
	c.runCase(t, "ActivatedUpgradeReload", c.testActivatedUpgradeReload)
	c.runCase(t, "Scale", c.testScale)
	c.runCase(t, "CPUAffinity", c.testCPUAffinity)
	t.Run("DeniedCallLogged", c.testDeniedCallLogged)
	c.runCase(t, "SignalsToEveryProcess", c.testSignalsToEveryProcess)
	c.runCase(t, "Watchdog", c.testWatchdog)
	c.runCase(t, "StopAfterUpgrade", c.testStopAfterUpgrade)
	c.runCase(t, "SupervisorKilled", c.testSupervisorKilled)
	c.runCase(t, "OpenFilesLimit", c.testOpenFilesLimit)
}

// SocketActivation: with only lancelot.socket started, a client's
// connection starts the service, and the client gets its answers.
func (c *container) testSocketActivation(t *testing.T) {
	c.sh(t, "systemctl start lancelot.socket")
	if st := c.show(t, "ActiveState")["ActiveState"]; st != "inactive" {
		t.Fatalf("%s is %s before any client; want inactive (only the socket started)", unitName, st)
	}
	conn := c.dial(t)
	for _, qa := range [][2]string{{lancelottest.QName, lancelottest.AName}, {lancelottest.QColor, lancelottest.AColor}} {
		if got, err := lancelottest.AskOn(conn, qa[0]); err != nil || got != qa[1] {
			t.Fatalf("first client, %q: got %q, %v; want %q", qa[0], got, err, qa[1])
		}
	}
	conn.Close()
	c.waitServing(t)
	c.startLoad(t).stopNoFailures(t)
}

// Status: `systemctl status` shows the supervisor's STATUS= line, naming
// the workers that really run.
func (c *container) testStatus(t *testing.T) {
	c.waitServing(t)
	l := c.startLoad(t)
	out, _ := c.shCode(t, "systemctl status --no-pager --lines=0 "+unitName)
	m := regexp.MustCompile(`Status: "serving on .* with (\d+) workers \(pids ([\d ]+)\), lancelot (\S+)"`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no `Status: \"serving on ... with N workers (pids ...), lancelot VERSION\"` line in systemctl status:\n%s", out)
	}
	if m[3] != version.Version {
		t.Errorf("status names lancelot %s, want %s", m[3], version.Version)
	}
	pids := parsePIDs(m[2])
	if n, _ := strconv.Atoi(m[1]); n != len(pids) || n < 1 {
		t.Errorf("status %q: %s workers but pids %v", m[0], m[1], pids)
	}
	if kids := c.workerPIDs(t, c.mainPID(t)); len(kids) != len(pids) || len(common(kids, pids)) != len(pids) {
		t.Errorf("status names workers %v; the supervisor's worker children are %v", pids, kids)
	}
	l.stopNoFailures(t)
}

// SocketPerWorker: socket activation hands each worker a listening socket
// of its own (lancelot.socket has one ListenStream= line per worker), and
// nothing warns that a socket could not be added.
func (c *container) testSocketPerWorker(t *testing.T) {
	unitFile, err := os.ReadFile("../../configs/lancelot.socket")
	if err != nil {
		t.Fatal(err)
	}
	lines := len(regexp.MustCompile(`(?m)^ListenStream=`).FindAll(unitFile, -1))
	c.waitServing(t)
	l := c.startLoad(t)
	out := c.sh(t, "ss -ltnpeH 'sport = :1060'")
	t.Logf("ss -ltnpe on :1060:\n%s", out)
	workers := c.servingPIDs(t)
	if len(workers) != lines {
		// Default workers = CPUs: the check below is for a machine with
		// as many CPUs as lancelot.socket has sockets (2, like CI's).
		t.Fatalf("%d workers but lancelot.socket has %d ListenStream= lines; run this on a %d-CPU machine", len(workers), lines, lines)
	}
	held := map[int][]string{} // worker pid -> inodes of the listening sockets it holds
	var inodes []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		ino := regexp.MustCompile(`\bino:(\d+)`).FindStringSubmatch(line)
		if ino == nil {
			t.Fatalf("no inode in ss line %q", line)
		}
		inodes = append(inodes, ino[1])
		for _, p := range regexp.MustCompile(`pid=(\d+)`).FindAllStringSubmatch(line, -1) {
			pid, _ := strconv.Atoi(p[1])
			if slices.Contains(workers, pid) && !slices.Contains(held[pid], ino[1]) {
				held[pid] = append(held[pid], ino[1])
			}
		}
	}
	if len(inodes) != len(workers) {
		t.Errorf("%d listening sockets on :1060 for %d workers %v; want one each", len(inodes), len(workers), workers)
	}
	seen := map[string]int{}
	for _, w := range workers {
		if len(held[w]) != 1 {
			t.Errorf("worker %d holds listening sockets %v; want exactly one", w, held[w])
			continue
		}
		if other, dup := seen[held[w][0]]; dup {
			t.Errorf("workers %d and %d share socket %s", other, w, held[w][0])
		}
		seen[held[w][0]] = w
	}
	if j := c.journal(t, "_SYSTEMD_INVOCATION_ID="+c.show(t, "InvocationID")["InvocationID"]); strings.Contains(j, "cannot add a listening socket") {
		t.Errorf("the supervisor warned about adding sockets:\n%s", grepLines(j, "cannot add"))
	}
	l.stopNoFailures(t)
}

// Reload: `systemctl reload` returns only once every worker was replaced,
// with the unit back to active; no client notices.
func (c *container) testReload(t *testing.T) {
	const tries = 10
	c.waitServing(t)
	l := c.startLoad(t)
	before := c.servingPIDs(t)
	var failed []string
	for i := range tries {
		// One shell, so the state is read right after systemctl returns.
		out, _ := c.shCode(t, "systemctl reload "+unitName+" 2>&1; echo rc=$?; systemctl show -p ActiveState,SubState,StatusText "+unitName)
		p := parseProps(out)
		after := statusPIDs(p["StatusText"])
		var why []string
		if p["rc"] != "0" {
			why = append(why, fmt.Sprintf("systemctl reload exited %s: %s", p["rc"], strings.TrimSpace(strings.Split(out, "rc=")[0])))
		}
		if p["ActiveState"] != "active" {
			why = append(why, fmt.Sprintf("unit %s/%s right after systemctl reload returned", p["ActiveState"], p["SubState"]))
		}
		if both := common(before, after); len(both) > 0 || len(after) != len(before) {
			why = append(why, fmt.Sprintf("serving workers %v right after it returned, before it %v (not all replaced)", after, before))
		}
		if len(why) > 0 {
			failed = append(failed, fmt.Sprintf("reload %d: %s", i+1, strings.Join(why, "; ")))
		}
		// Whatever happened, start the next try from a settled state.
		c.waitServing(t)
		before = c.servingPIDs(t)
	}
	if len(failed) > 0 {
		t.Errorf("%d of %d reloads failed; first: %s\njournal:\n%s", len(failed), tries, failed[0], c.journalTail(t, 8))
	}
	l.stopNoFailures(t)
}

// Upgrade: USR2 to the main process makes a new supervisor the unit's
// MainPID; the old one exits; no client notices.
func (c *container) testUpgrade(t *testing.T) {
	c.waitServing(t)
	restarts := c.show(t, "NRestarts")["NRestarts"]
	l := c.startLoad(t)
	for range 3 {
		c.upgrade(t, "--kill-whom=main")
	}
	if p := c.show(t, "ActiveState", "NRestarts"); p["ActiveState"] != "active" || p["NRestarts"] != restarts {
		t.Errorf("after the upgrades: %v; want active and NRestarts=%s", p, restarts)
	}
	l.stopNoFailures(t)
}

// ActivatedUpgradeReload: the service runs on lancelot.socket's sockets;
// `lancelot upgrade` (the package upgrade's USR2), then `systemctl reload`
// with a configuration that names another address: the service still
// serves on the socket unit's address, binds nothing of its own, and says
// once why it ignores the listen setting. (Release 0.3.0's successor bound
// the configured address and retired systemd's sockets, whose clients then
// queued at PID 1 for ever.)
func (c *container) testActivatedUpgradeReload(t *testing.T) {
	if st := strings.TrimSpace(c.sh(t, "systemctl is-active lancelot.socket || true")); st != "active" {
		t.Fatalf("lancelot.socket is %s; want active", st)
	}
	c.waitServing(t)
	c.sh(t, "cp /etc/lancelot/lancelot.yaml /etc/lancelot/lancelot.yaml.orig && "+
		"sed -i 's/^listen: .*/listen: \"127.0.0.1:1061\"/' /etc/lancelot/lancelot.yaml && grep -q '^listen: \"127.0.0.1:1061\"' /etc/lancelot/lancelot.yaml")
	t.Cleanup(func() {
		c.sh(t, "mv /etc/lancelot/lancelot.yaml.orig /etc/lancelot/lancelot.yaml && systemctl reload "+unitName)
	})
	cursor := c.cursor(t)
	l := c.startLoad(t)
	old := c.mainPID(t)
	if out, code := c.shCode(t, "lancelot upgrade --pid-file /run/lancelot/lancelot.pid 2>&1"); code != 0 {
		t.Fatalf("lancelot upgrade exited %d: %s", code, out)
	}
	lancelottest.WaitFor(t, 15*time.Second, "a new serving MainPID after lancelot upgrade", func() bool {
		p := c.show(t, "MainPID", "StatusText")
		return p["MainPID"] != strconv.Itoa(old) && p["MainPID"] != "0" && strings.HasPrefix(p["StatusText"], "serving")
	})
	c.waitGone(t, old)
	if out, code := c.shCode(t, "systemctl reload "+unitName+" 2>&1"); code != 0 {
		t.Fatalf("systemctl reload exited %d: %s", code, out)
	}
	c.waitServing(t)
	if out := strings.TrimSpace(c.sh(t, "ss -ltnH 'sport = :1061'")); out != "" {
		t.Errorf("after the reload something listens on the configured 127.0.0.1:1061:\n%s", out)
	}
	conn := c.dial(t)
	if got, err := lancelottest.AskOn(conn, lancelottest.QName); err != nil || got != lancelottest.AName {
		t.Errorf("the socket unit's address after the upgrade and the reload: %q, %v", got, err)
	}
	conn.Close()
	j := c.journalSince(t, cursor)
	if n := strings.Count(j, "belong to the socket unit (socket activation)"); n != 1 {
		t.Errorf("%d journal lines saying the addresses are the socket unit's; want 1:\n%s", n, grepLines(j, "reload", "socket"))
	}
	l.stopNoFailures(t)
}

// SignalsToEveryProcess: `systemctl kill` without --kill-whom signals every
// process of the unit, the new supervisor an upgrade just started included.
// Each USR2 still makes exactly one upgrade, each HUP one reload, and no
// process dies of the signal.
func (c *container) testSignalsToEveryProcess(t *testing.T) {
	const tries = 10
	c.waitServing(t)
	l := c.startLoad(t)
	cursor := c.cursor(t)
	failed := 0
	var first string
	for i := range tries {
		old := c.mainPID(t)
		try := c.cursor(t)
		c.sh(t, "systemctl kill -s USR2 "+unitName)
		var p map[string]string
		ok := pollUntil(10*time.Second, func() bool {
			p = c.show(t, "MainPID", "StatusText")
			return (p["MainPID"] != strconv.Itoa(old) && p["MainPID"] != "0" && strings.HasPrefix(p["StatusText"], "serving")) ||
				strings.Contains(c.journalSince(t, try), "binary upgrade failed")
		})
		if !ok || p["MainPID"] == strconv.Itoa(old) {
			failed++
			if first == "" {
				first = fmt.Sprintf("USR2 %d: MainPID still %d (%q); journal:\n%s", i+1, old, p["StatusText"], c.journalSince(t, try))
			}
			c.waitServing(t)
			continue
		}
		c.waitServing(t)
		c.waitGone(t, old)
	}
	if failed > 0 {
		t.Errorf("%d of %d USR2 to every process did not complete an upgrade; first: %s", failed, tries, first)
	}
	if died := grepLines(c.journalSince(t, cursor), "user defined signal 2"); died != "" {
		t.Errorf("processes died of USR2:\n%s", died)
	}

	// HUP to every process: one reload.
	before := c.servingPIDs(t)
	cursor = c.cursor(t)
	c.sh(t, "systemctl kill -s HUP "+unitName)
	if !pollUntil(15*time.Second, func() bool { return strings.Contains(c.journalSince(t, cursor), "rollout complete") }) {
		t.Fatalf("no `rollout complete` 15s after HUP to every process; status %q; journal since:\n%s\nprocesses:\n%s",
			c.show(t, "StatusText")["StatusText"], c.journalSince(t, cursor), c.sh(t, "ps -eo pid,ppid,stat,args | grep '[l]ancelot'"))
	}
	c.waitServing(t)
	// A second (queued) reload would start right after the first one ends;
	// give it a moment to show up in the journal.
	time.Sleep(time.Second)
	j := c.journalSince(t, cursor)
	if n := strings.Count(j, "msg=\"rollout starting\" rollout=reload"); n != 1 {
		t.Errorf("one HUP to every process started %d reloads; want 1:\n%s", n, grepLines(j, "rollout", "signal received"))
	}
	if both := common(before, c.servingPIDs(t)); len(both) > 0 {
		t.Errorf("workers %v not replaced by the HUP", both)
	}
	if died := grepLines(j, "killed by hangup"); died != "" {
		t.Errorf("processes died of HUP:\n%s", died)
	}
	l.stopNoFailures(t)
}

// Watchdog: the watchdog keeps being fed across reloads and upgrades. The
// unit's 30s is shortened to 2s with a drop-in, so the test need not run
// for minutes; the supervisor pings every WatchdogSec/2.
func (c *container) testWatchdog(t *testing.T) {
	const period = 2 * time.Second
	c.sh(t, "mkdir -p /etc/systemd/system/lancelot.service.d && printf '[Service]\\nWatchdogSec=2s\\n' >/etc/systemd/system/lancelot.service.d/watchdog.conf && systemctl daemon-reload && systemctl reset-failed "+unitName+"; systemctl restart "+unitName)
	t.Cleanup(func() {
		c.sh(t, "rm -rf /etc/systemd/system/lancelot.service.d && systemctl daemon-reload && systemctl restart "+unitName)
	})
	c.waitServing(t)
	start := c.show(t, "InvocationID", "NRestarts", "WatchdogUSec")
	if start["WatchdogUSec"] != "2s" {
		t.Fatalf("WatchdogUSec = %q; want the drop-in's 2s", start["WatchdogUSec"])
	}
	l := c.startLoad(t)
	// Reload and upgrade in turn for four watchdog periods.
	deadline := time.Now().Add(4 * period)
	reloads, upgrades := 0, 0
	for time.Now().Before(deadline) || reloads < 2 || upgrades < 2 {
		if reloads <= upgrades {
			before := c.servingPIDs(t)
			c.sh(t, "systemctl kill -s HUP --kill-whom=main "+unitName)
			lancelottest.WaitFor(t, 10*time.Second, "the reload's new workers serving", func() bool {
				after := c.statusPIDsOrNil(t)
				return len(after) == len(before) && len(common(before, after)) == 0
			})
			reloads++
		} else {
			c.upgrade(t, "--kill-whom=main")
			upgrades++
		}
	}
	end := c.show(t, "InvocationID", "NRestarts", "ActiveState", "Result")
	if end["InvocationID"] != start["InvocationID"] || end["NRestarts"] != start["NRestarts"] || end["ActiveState"] != "active" || end["Result"] != "success" {
		t.Errorf("after %d reloads and %d upgrades over %v: %v; want the same invocation %s, NRestarts=%s, active, success",
			reloads, upgrades, 4*period, end, start["InvocationID"], start["NRestarts"])
	}
	j := c.journal(t, "INVOCATION_ID="+start["InvocationID"], "+", "_SYSTEMD_INVOCATION_ID="+start["InvocationID"])
	if w := grepLines(j, "Watchdog timeout", "'watchdog'"); w != "" {
		t.Errorf("the watchdog fired:\n%s", w)
	}
	l.stopNoFailures(t)
}

// StopAfterUpgrade: after a binary upgrade, `systemctl stop` is graceful: a
// connected client finishes its session, and the unit ends with
// Result=success, nothing SIGKILLed.
func (c *container) testStopAfterUpgrade(t *testing.T) {
	const tries = 10
	l := c.startLoad(t)
	var failures []string
	for i := range tries {
		if why := c.stopAfterUpgrade(t); why != "" {
			failures = append(failures, fmt.Sprintf("try %d: %s", i+1, why))
		}
	}
	t.Logf("graceful stop after an upgrade failed in %d of %d tries", len(failures), tries)
	if len(failures) > 0 {
		t.Errorf("%d of %d stops after an upgrade were not graceful:\n%s", len(failures), tries, strings.Join(failures, "\n"))
	}
	// The load sees the stops as queueing only: lancelot.socket keeps
	// listening and starts the service again, except where a stop was
	// not graceful (then it counts the connections killed).
	l.stopNoFailures(t)
}

// stopAfterUpgrade runs one try and says what went wrong, if anything.
func (c *container) stopAfterUpgrade(t *testing.T) string {
	c.sh(t, "systemctl reset-failed "+unitName+" 2>/dev/null; systemctl start "+unitName)
	c.waitServing(t)
	c.upgrade(t, "--kill-whom=main")
	inv := c.show(t, "InvocationID")["InvocationID"]
	conn := c.dial(t)
	defer conn.Close()
	if got, err := lancelottest.AskOn(conn, lancelottest.QName); err != nil || got != lancelottest.AName {
		return fmt.Sprintf("before the stop: %q, %v", got, err)
	}
	type result struct {
		out  string
		code int
	}
	done := make(chan result, 1)
	finished := make(chan struct{})
	go func() {
		out, _, code, _ := c.run(60*time.Second, "sh", "-c", "systemctl stop "+unitName+" 2>&1; echo rc=$?; systemctl show -p Result,InvocationID "+unitName)
		done <- result{out, code}
		close(finished)
	}()
	var why []string
	// The stop has begun once the unit leaves active. A stop that kills at
	// once may be over, and the service started again by its socket for
	// the load's clients, before a poll sees it: a new invocation counts.
	if !pollUntil(10*time.Second, func() bool {
		select {
		case <-finished:
			return true
		default:
		}
		p := c.show(t, "ActiveState", "InvocationID")
		return p["ActiveState"] != "active" || p["InvocationID"] != inv
	}) {
		why = append(why, "unit still active 10s after systemctl stop began")
	}
	for _, qa := range [][2]string{{lancelottest.QQuest, lancelottest.AQuest}, {lancelottest.QColor, lancelottest.AColor}} {
		if got, err := lancelottest.AskOn(conn, qa[0]); err != nil || got != qa[1] {
			why = append(why, fmt.Sprintf("connected client during the stop: %q got %q, %v", qa[0], got, err))
			break
		}
	}
	conn.Close()
	var res result
	select {
	case res = <-done:
	case <-time.After(40 * time.Second):
		c.sh(t, "systemctl kill -s KILL "+unitName)
		res = <-done
		why = append(why, "systemctl stop still running after 40s")
	}
	p := parseProps(res.out)
	if p["rc"] != "0" {
		why = append(why, "systemctl stop: "+strings.TrimSpace(strings.Split(res.out, "rc=")[0]))
	}
	// lancelot.socket may have started the service again already, for the
	// load's queued clients; then Result is the new run's and the journal
	// tells how this one ended.
	if p["InvocationID"] == inv && p["Result"] != "success" {
		why = append(why, "Result="+p["Result"])
	}
	var j string
	pollUntil(5*time.Second, func() bool {
		j = c.journal(t, "INVOCATION_ID="+inv, "+", "_SYSTEMD_INVOCATION_ID="+inv)
		return strings.Contains(j, "Deactivated successfully") || strings.Contains(j, "Failed with result")
	})
	if !strings.Contains(j, "Deactivated successfully") {
		why = append(why, "journal: "+strings.ReplaceAll(grepLines(j, "Failed with result", "Main process exited"), "\n", " | "))
	}
	if n := strings.Count(j, "with signal SIGKILL"); n > 0 {
		why = append(why, fmt.Sprintf("systemd SIGKILLed %d processes", n))
	}
	if k := grepLines(j, "not our child"); k != "" {
		why = append(why, "journal: "+strings.ReplaceAll(k, "\n", " | "))
	}
	return strings.Join(why, "; ")
}

// SupervisorKilled: SIGKILL of the supervisor makes systemd restart the
// service (Restart=on-failure), and no worker of the killed one is left.
func (c *container) testSupervisorKilled(t *testing.T) {
	c.sh(t, "systemctl reset-failed "+unitName+" 2>/dev/null; systemctl start "+unitName)
	c.waitServing(t)
	before := c.show(t, "MainPID", "NRestarts")
	main, _ := strconv.Atoi(before["MainPID"])
	workers := c.workerPIDs(t, main)
	restarts, _ := strconv.Atoi(before["NRestarts"])
	l := c.startLoad(t)
	c.sh(t, "systemctl kill -s KILL --kill-whom=main "+unitName)
	lancelottest.WaitFor(t, 15*time.Second, "systemd to restart the service", func() bool {
		p := c.show(t, "MainPID", "NRestarts", "ActiveState", "StatusText")
		return p["NRestarts"] == strconv.Itoa(restarts+1) && p["ActiveState"] == "active" &&
			p["MainPID"] != before["MainPID"] && strings.HasPrefix(p["StatusText"], "serving")
	})
	for _, w := range workers {
		if c.alive(t, w) {
			t.Errorf("worker %d of the killed supervisor %d still runs", w, main)
		}
	}
	// Everything in the unit's cgroup is the new supervisor or its child.
	newMain := c.mainPID(t)
	kids := c.workerPIDs(t, newMain)
	for _, pid := range parsePIDs(c.sh(t, "cat /sys/fs/cgroup/system.slice/"+unitName+"/cgroup.procs")) {
		if pid != newMain && !slices.Contains(kids, pid) {
			t.Errorf("process %d in the unit's cgroup is neither the supervisor %d nor one of its workers %v:\n%s",
				pid, newMain, kids, c.sh(t, "ps -o pid,ppid,args -p "+strconv.Itoa(pid)+" || true"))
		}
	}
	// Killing processes kills the connections they had open; none may be
	// refused (the socket is systemd's) or answered wrongly.
	res := l.stop(t)
	t.Logf("load across the SIGKILL: %d exchanges, errors %v", res.Exchanges, res.Errors)
	if res.Errors[loadgen.Refused] > 0 || res.Errors[loadgen.WrongAnswer] > 0 {
		t.Errorf("load across the SIGKILL: errors %v; want no refused, no wrong answer", res.Errors)
	}
}

// OpenFilesLimit reports the descriptor limit the service really gets:
// systemd caps LimitNOFILE= at its own hard limit without a word.
func (c *container) testOpenFilesLimit(t *testing.T) {
	c.waitServing(t)
	want := c.sh(t, "systemctl show -p LimitNOFILE --value "+unitName)
	got := c.sh(t, fmt.Sprintf("grep 'Max open files' /proc/%d/limits", c.mainPID(t)))
	pid1 := c.sh(t, "grep 'Max open files' /proc/1/limits")
	t.Logf("unit LimitNOFILE=%s; the supervisor has %s; the container's systemd has %s",
		strings.TrimSpace(want), strings.Join(strings.Fields(got), " "), strings.Join(strings.Fields(pid1), " "))
}

// container is a booted nspawn container.
type container struct {
	nspawn int // systemd-nspawn's pid
	pid1   int // the container's PID 1, as the host sees it
	loads  int // bench runs started, to name their output files
}

// bootContainer builds (or reuses) the root filesystem and boots a
// container from it, stopped when the test ends whatever happens.
func bootContainer(t *testing.T) *container {
	t.Helper()
	rootfs := strings.TrimSpace(nspawn(t, 10*time.Minute, "rootfs"))
	out := nspawn(t, 3*time.Minute, "boot", rootfs)
	c := &container{}
	if _, err := fmt.Sscan(out, &c.nspawn, &c.pid1); err != nil {
		t.Fatalf("nspawn.sh boot printed %q; want NSPAWN_PID PID1", out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("journal of %s (last 60 lines):\n%s", unitName, c.journalTail(t, 60))
		}
		nspawn(t, 2*time.Minute, "stop", strconv.Itoa(c.nspawn))
	})
	return c
}

// nspawn runs docs/systemd/nspawn.sh and returns its stdout.
func nspawn(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	var stdout, stderr strings.Builder
	cmd := exec.Command("bash", append([]string{nspawnScript}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := runBounded(cmd, timeout); err != nil {
		t.Fatalf("nspawn.sh %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// runBounded runs cmd, killing it after timeout.
func runBounded(cmd *exec.Cmd, timeout time.Duration) error {
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return err
	}
	timer := time.AfterFunc(timeout, func() { cmd.Process.Kill() })
	defer timer.Stop()
	return cmd.Wait()
}

// install copies the binary and the configs in, then installs them with
// the commands of docs/operations.md ("Install under systemd"). The units
// are enabled but not started: SocketActivation starts the socket.
func (c *container) install(t *testing.T, bin string) {
	t.Helper()
	src := fmt.Sprintf("/proc/%d/root/root/lancelot", c.pid1)
	if err := os.MkdirAll(filepath.Join(src, "configs"), 0o755); err != nil {
		t.Fatal(err)
	}
	copies := map[string]string{bin: "lancelot"}
	for _, f := range []string{"lancelot.yaml", "lancelot.service", "lancelot.socket"} {
		copies[filepath.Join("../../configs", f)] = filepath.Join("configs", f)
	}
	for from, to := range copies {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, to), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.sh(t, `set -e; cd /root/lancelot
		install -m 0755 lancelot /usr/local/bin/lancelot
		install -d /etc/lancelot
		install -m 0644 configs/lancelot.yaml /etc/lancelot/lancelot.yaml
		install -m 0644 configs/lancelot.service configs/lancelot.socket /etc/systemd/system/
		systemctl daemon-reload
		systemctl enable lancelot.socket lancelot.service 2>&1`)
	// A binary built against a newer C library than the container's would
	// fail here rather than in every case.
	if out, errOut, code, err := c.run(time.Minute, "/usr/local/bin/lancelot", "--help"); err != nil || code != 0 {
		t.Fatalf("lancelot --help in the container: exit %d, %v\n%s%s", code, err, out, errOut)
	}
}

// run runs argv inside the container and returns its output and exit code;
// err is for a command that could not run or timed out.
func (c *container) run(timeout time.Duration, argv ...string) (stdout, stderr string, code int, err error) {
	var o, e strings.Builder
	cmd := exec.Command("bash", append([]string{nspawnScript, "exec", strconv.Itoa(c.pid1)}, argv...)...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err = runBounded(cmd, timeout)
	if _, exited := err.(*exec.ExitError); exited {
		err = nil
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode(), err
}

// shCode runs a shell script inside the container and returns its stdout
// and exit code.
func (c *container) shCode(t testing.TB, script string) (string, int) {
	t.Helper()
	out, errOut, code, err := c.run(time.Minute, "sh", "-c", script)
	if err != nil {
		t.Fatalf("in the container: %q: %v\n%s", script, err, errOut)
	}
	return out, code
}

// sh runs a shell script inside the container and returns its stdout; a
// non-zero exit fails the test.
func (c *container) sh(t testing.TB, script string) string {
	t.Helper()
	out, errOut, code, err := c.run(time.Minute, "sh", "-c", script)
	if err != nil || code != 0 {
		t.Fatalf("in the container: %q: exit %d, %v\n%s%s", script, code, err, out, errOut)
	}
	return out
}

// show returns properties of the unit.
func (c *container) show(t testing.TB, props ...string) map[string]string {
	t.Helper()
	return parseProps(c.sh(t, "systemctl show -p "+strings.Join(props, ",")+" "+unitName))
}

// parseProps parses KEY=VALUE lines.
func parseProps(out string) map[string]string {
	p := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			p[k] = v
		}
	}
	return p
}

func (c *container) mainPID(t testing.TB) int {
	t.Helper()
	pid, _ := strconv.Atoi(c.show(t, "MainPID")["MainPID"])
	return pid
}

// waitServing waits for the unit to be active with a supervisor whose
// STATUS= says it is serving.
func (c *container) waitServing(t testing.TB) {
	t.Helper()
	var p map[string]string
	if !pollUntil(20*time.Second, func() bool {
		p = c.show(t, "ActiveState", "SubState", "MainPID", "StatusText")
		return p["ActiveState"] == "active" && p["MainPID"] != "0" && strings.HasPrefix(p["StatusText"], "serving")
	}) {
		t.Fatalf("%s not serving after 20s: %v\njournal:\n%s", unitName, p, c.journalTail(t, 20))
	}
}

// upgrade signals USR2 (with extra systemctl kill flags) and waits for a
// new supervisor to be the serving MainPID and the old one to be gone.
func (c *container) upgrade(t testing.TB, flags string) {
	t.Helper()
	old := c.mainPID(t)
	c.sh(t, "systemctl kill -s USR2 "+flags+" "+unitName)
	lancelottest.WaitFor(t, 15*time.Second, fmt.Sprintf("MainPID to change from %d after USR2", old), func() bool {
		p := c.show(t, "MainPID", "StatusText")
		return p["MainPID"] != strconv.Itoa(old) && p["MainPID"] != "0" && strings.HasPrefix(p["StatusText"], "serving")
	})
	c.waitGone(t, old)
}

// waitGone waits for a process inside the container to exit.
func (c *container) waitGone(t testing.TB, pid int) {
	t.Helper()
	lancelottest.WaitFor(t, 15*time.Second, fmt.Sprintf("process %d to exit", pid), func() bool { return !c.alive(t, pid) })
}

// alive reports whether pid runs inside the container (zombies do not count).
func (c *container) alive(t testing.TB, pid int) bool {
	t.Helper()
	out, _ := c.shCode(t, fmt.Sprintf("ps -o stat= -p %d", pid))
	s := strings.TrimSpace(out)
	return s != "" && !strings.HasPrefix(s, "Z")
}

// servingPIDs returns the workers the supervisor's STATUS= names.
func (c *container) servingPIDs(t testing.TB) []int {
	t.Helper()
	pids := c.statusPIDsOrNil(t)
	if len(pids) == 0 {
		t.Fatalf("no worker pids in StatusText %q", c.show(t, "StatusText")["StatusText"])
	}
	return pids
}

func (c *container) statusPIDsOrNil(t testing.TB) []int {
	t.Helper()
	return statusPIDs(c.show(t, "StatusText")["StatusText"])
}

// statusPIDs parses "serving on ADDR with N workers (pids P1 P2)".
func statusPIDs(status string) []int {
	m := regexp.MustCompile(`^serving on .* \(pids ([\d ]+)\)`).FindStringSubmatch(status)
	if m == nil {
		return nil
	}
	return parsePIDs(m[1])
}

// workerPIDs lists the `lancelot worker` children of pid.
func (c *container) workerPIDs(t testing.TB, pid int) []int {
	t.Helper()
	out, _ := c.shCode(t, fmt.Sprintf("ps -o pid=,args= --ppid %d", pid))
	var pids []int
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[2] == "worker" {
			n, _ := strconv.Atoi(f[0])
			pids = append(pids, n)
		}
	}
	return pids
}

func parsePIDs(s string) []int {
	var pids []int
	for _, f := range strings.Fields(s) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}

// cursor returns the journal's current end, for journalSince.
func (c *container) cursor(t testing.TB) string {
	t.Helper()
	out := strings.TrimSpace(c.sh(t, "journalctl -q -n 0 --show-cursor"))
	cur, ok := strings.CutPrefix(out, "-- cursor: ")
	if !ok {
		t.Fatalf("journalctl --show-cursor printed %q", out)
	}
	return cur
}

// journalSince returns the unit's journal lines after cursor.
func (c *container) journalSince(t testing.TB, cursor string) string {
	t.Helper()
	return c.sh(t, "journalctl -q --no-pager -o cat -u "+unitName+" --after-cursor='"+cursor+"'")
}

// journal returns the journal lines matching the journalctl matches.
func (c *container) journal(t testing.TB, matches ...string) string {
	t.Helper()
	return c.sh(t, "journalctl -q --no-pager -o cat "+strings.Join(matches, " "))
}

// journalTail returns the unit's last n journal lines, for failure reports.
func (c *container) journalTail(t testing.TB, n int) string {
	t.Helper()
	out, _, _, _ := c.run(time.Minute, "journalctl", "-q", "--no-pager", "-o", "short-precise", "-u", unitName, "-n", strconv.Itoa(n))
	return out
}

// grepLines returns the lines of s containing any of subs.
func grepLines(s string, subs ...string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		for _, sub := range subs {
			if strings.Contains(line, sub) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// pollUntil polls cond until it holds (true) or timeout passes (false).
func pollUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(delay)
	}
}

// dial connects to 127.0.0.1:1060 inside the container. The connection is
// closed when the test ends.
func (c *container) dial(t testing.TB) net.Conn {
	t.Helper()
	conn, err := dialInNetns(c.pid1, "127.0.0.1:1060")
	if err != nil {
		t.Fatalf("dial 127.0.0.1:1060 in the container: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// dialInNetns dials addr from the network namespace of pid. Namespaces
// belong to threads, so a locked thread enters it for the socket's
// creation; the socket stays in that namespace whichever thread uses it.
func dialInNetns(pid int, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer home.Close()
		target, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("setns: %w", err)}
			return
		}
		conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
		// A thread that cannot return home stays locked, and so ends with
		// this goroutine instead of serving others in the wrong namespace.
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- result{conn, err}
	}()
	r := <-done
	return r.conn, r.err
}

// benchLoad is a `lancelot bench --mode book` running inside the container.
type benchLoad struct {
	c   *container
	pid int    // in the container
	out string // its JSON result file, in the container
}

// startLoad starts 8 book-style clients (connect, three questions, close)
// on 127.0.0.1:1060 inside the container and waits until they connect.
func (c *container) startLoad(t *testing.T) *benchLoad {
	t.Helper()
	c.loads++
	out := fmt.Sprintf("/var/tmp/lancelot-bench-%d.json", c.loads)
	pid := strings.TrimSpace(c.sh(t, "lancelot bench --server 127.0.0.1:1060 --mode book -c 8 --duration 10m --json </dev/null >"+out+" 2>"+out+".err & echo $!"))
	l := &benchLoad{c: c, out: out}
	l.pid, _ = strconv.Atoi(pid)
	t.Cleanup(func() { c.run(time.Minute, "kill", "-KILL", pid) })
	lancelottest.WaitFor(t, 10*time.Second, "the load's connections", func() bool {
		n, _ := c.shCode(t, "ss -tanH 'dport = :1060' | wc -l")
		return strings.TrimSpace(n) != "0"
	})
	return l
}

// stop ends the load (SIGINT: bench still reports) and returns its result.
func (l *benchLoad) stop(t *testing.T) loadgen.Result {
	t.Helper()
	l.c.sh(t, fmt.Sprintf("kill -INT %[1]d; for i in $(seq 200); do kill -0 %[1]d 2>/dev/null || exit 0; sleep 0.05; done; echo bench still running >&2; exit 1", l.pid))
	b := l.c.sh(t, "cat "+l.out)
	var res loadgen.Result
	if err := json.Unmarshal([]byte(b), &res); err != nil {
		errOut, _ := l.c.shCode(t, "cat "+l.out+".err")
		t.Fatalf("bench output %q: %v; stderr: %s", b, err, errOut)
	}
	if res.Exchanges == 0 {
		t.Errorf("the load made no exchanges: %+v", res)
	}
	return res
}

// stopNoFailures stops the load and fails the test on any failure.
func (l *benchLoad) stopNoFailures(t *testing.T) {
	t.Helper()
	res := l.stop(t)
	t.Logf("load: %d exchanges, %d failures %v", res.Exchanges, res.ErrorCount(), res.Errors)
	if res.ErrorCount() > 0 {
		t.Errorf("load: %d failures %v; want none", res.ErrorCount(), res.Errors)
	}
}
