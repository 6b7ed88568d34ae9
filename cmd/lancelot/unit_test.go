package main

// The hardening of configs/lancelot.service: what systemd-analyze rates it
// (in the ordinary suite), and, as cases of TestRealSystemd, that the
// sandbox is really applied and the features that need something from it
// (TTIN/TTOU, cpu-affinity) still work under it.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/lancelottest"
	"github.com/camelot/lancelot/supervisor"
)

// maxExposure is the most `systemd-analyze security` may rate the unit
// (systemd 252 rates it 1.4; 3.4 before it was hardened).
const maxExposure = 1.5

// acceptedGaps are the checks of `systemd-analyze security` the unit fails
// on purpose (docs/hardening.md says why for each). Any other failing
// check is a setting lost or weakened, even one too small to move the
// overall level past maxExposure.
var acceptedGaps = []string{
	"SystemCallFilter=~@resources",             // sched_setaffinity, for cpu-affinity
	"RestrictAddressFamilies=~AF_UNIX",         // notify, admin and worker channels
	"RestrictAddressFamilies=~AF_(INET|INET6)", // it is a TCP server
	"PrivateNetwork=",                          // idem
	"IPAddressDeny=",                           // it serves any address
	"NotifyAccess=",                            // all: the 0.2.0 -> successor MAINPID=
	"DeviceAllow=",                             // char-rtc:r, which ProtectClock= adds
	"RootDirectory=/RootImage=",                // runs the host's binary
}

func TestSystemdUnitExposure(t *testing.T) {
	const unit = "../../configs/lancelot.service"
	out := analyzeSecurity(t, unit)
	m := regexp.MustCompile(`Overall exposure level for lancelot\.service: (\d+\.\d)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure level in systemd-analyze security's output:\n%s", out)
	}
	level, _ := strconv.ParseFloat(m[1], 64)
	t.Logf("systemd-analyze security --offline=true %s: exposure %.1f", unit, level)
	if level > maxExposure {
		t.Errorf("exposure %.1f, want <= %.1f; failing checks:\n%s", level, maxExposure, grepLines(out, "✗"))
	}
	var checks []struct {
		Name     string  `json:"name"`
		Exposure *string `json:"exposure"`
	}
	if err := json.Unmarshal([]byte(analyzeSecurity(t, "--json=short", unit)), &checks); err != nil {
		t.Fatalf("systemd-analyze security --json=short: %v", err)
	}
	if len(checks) < 50 {
		t.Fatalf("only %d checks in systemd-analyze security --json=short", len(checks))
	}
	for _, c := range checks {
		if c.Exposure != nil && !slices.Contains(acceptedGaps, c.Name) {
			t.Errorf("the unit fails %s (exposure %s): a hardening setting was lost or weakened", c.Name, *c.Exposure)
		}
	}
}

// analyzeSecurity runs `systemd-analyze security --offline=true ARGS...`.
// A systemd-analyze too old for --offline (before 250) counts as missing.
func analyzeSecurity(t *testing.T, args ...string) string {
	t.Helper()
	analyze := requireTool(t, "systemd-analyze")
	cmd := exec.Command(analyze, append([]string{"security", "--offline=true"}, args...)...)
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok && strings.Contains(string(ee.Stderr), "--offline") {
		if os.Getenv("LANCELOT_REQUIRE_TOOLS") == "1" {
			t.Fatalf("systemd-analyze has no --offline (systemd >= 250 needed): %s", ee.Stderr)
		}
		t.Skipf("systemd-analyze has no --offline (systemd >= 250 needed)")
	}
	if err != nil {
		t.Fatalf("systemd-analyze security %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// runCase runs one case of TestRealSystemd and fails it if the service
// logged "operation not permitted" meanwhile: with SystemCallErrorNumber=EPERM
// a system call the unit's filter refuses fails with EPERM instead of
// killing the process, and lancelot logs the error (DeniedCallLogged shows
// it does).
func (c *container) runCase(t *testing.T, name string, f func(*testing.T)) {
	t.Run(name, func(t *testing.T) {
		cursor := c.cursor(t)
		defer c.noDenials(t, cursor)
		f(t)
	})
}

// noDenials fails the test on a refusal in the unit's journal since cursor.
func (c *container) noDenials(t *testing.T, cursor string) {
	t.Helper()
	if d := grepLines(strings.ToLower(c.journalSince(t, cursor)), "operation not permitted", "bad system call"); d != "" {
		t.Errorf("the service was refused something under the hardened unit:\n%s", d)
	}
}

// Hardening: the sandbox the unit asks for is what its processes run in.
func (c *container) testHardening(t *testing.T) {
	c.waitServing(t)
	sup := c.mainPID(t)
	for _, pid := range append([]int{sup}, c.workerPIDs(t, sup)...) {
		st := parseStatusFile(c.sh(t, fmt.Sprintf("cat /proc/%d/status", pid)))
		for k, want := range map[string]string{"Seccomp": "2", "NoNewPrivs": "1", "CapEff": "0000000000000000", "CapBnd": "0000000000000000"} {
			if st[k] != want {
				t.Errorf("pid %d: %s %q, want %q", pid, k, st[k], want)
			}
		}
		// PrivateUsers=: a user namespace that maps root and the service's
		// own user only, not the whole range.
		if m := strings.Fields(c.sh(t, fmt.Sprintf("cat /proc/%d/uid_map", pid))); len(m) != 6 {
			t.Errorf("pid %d: uid_map %v, want two one-id lines (PrivateUsers=yes)", pid, m)
		}
		if mi := c.sh(t, fmt.Sprintf("cat /proc/%d/mountinfo", pid)); !regexp.MustCompile(`(?m) /proc .*hidepid=(invisible|2)`).MatchString(mi) {
			t.Errorf("pid %d: /proc not mounted with hidepid=invisible:\n%s", pid, grepLines(mi, " /proc "))
		}
	}
	filter := strings.Fields(c.sh(t, "systemctl show -p SystemCallFilter --value "+unitName))
	for _, call := range []string{"sched_setaffinity", "memfd_create", "pidfd_open", "pidfd_send_signal", "prctl", "socketpair", "sendmsg", "execve", "prlimit64"} {
		if !slices.Contains(filter, call) {
			t.Errorf("SystemCallFilter lacks %s, which lancelot uses", call)
		}
	}
	for _, call := range []string{"setrlimit", "setpriority", "setuid", "chown", "mount", "reboot", "ptrace"} {
		if slices.Contains(filter, call) {
			t.Errorf("SystemCallFilter allows %s", call)
		}
	}
	// The unit as this systemd loaded it, drop-ins and defaults included.
	out, _ := c.shCode(t, "systemd-analyze security --no-pager "+unitName+" 2>&1 | tail -n 3")
	m := regexp.MustCompile(`Overall exposure level for lancelot\.service: (\d+\.\d)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level from systemd-analyze security in the container:\n%s", out)
	}
	if level, _ := strconv.ParseFloat(m[1], 64); level > maxExposure {
		t.Errorf("systemd-analyze security %s in the container: %.1f, want <= %.1f", unitName, level, maxExposure)
	}
	t.Logf("systemd-analyze security %s in the container: %s", unitName, m[1])
	c.startLoad(t).stopNoFailures(t)
}

// parseStatusFile parses /proc/PID/status ("Key:\tvalue" lines).
func parseStatusFile(s string) map[string]string {
	p := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			p[k] = strings.TrimSpace(v)
		}
	}
	return p
}

// Scale: TTIN and TTOU to the main process add and remove workers, down
// to one and no further, as `lancelot status` and the supervisor's
// children show; no client notices.
func (c *container) testScale(t *testing.T) {
	c.waitServing(t)
	l := c.startLoad(t)
	n := c.status(t).Running
	// Up two, down to one, one TTOU too many, back up to n.
	sigs := []string{"TTIN", "TTIN"}
	for range n + 2 {
		sigs = append(sigs, "TTOU")
	}
	for range n - 1 {
		sigs = append(sigs, "TTIN")
	}
	want := n
	for i, sig := range sigs {
		if sig == "TTIN" {
			want++
		} else {
			want = max(1, want-1)
		}
		c.sh(t, "systemctl kill -s "+sig+" --kill-whom=main "+unitName)
		c.waitWorkers(t, fmt.Sprintf("signal %d (%s)", i+1, sig), want)
	}
	l.stopNoFailures(t)
}

// waitWorkers waits until the supervisor runs want workers, each ready,
// no rollout in flight, and as many worker processes besides those
// draining.
func (c *container) waitWorkers(t *testing.T, what string, want int) {
	t.Helper()
	var st supervisor.Status
	var live []int
	ok := pollUntil(15*time.Second, func() bool {
		st = c.status(t)
		ready := 0
		for _, sl := range st.Slots {
			if sl.Ready && sl.PID != 0 {
				ready++
			}
		}
		live = nil
		for _, p := range c.workerPIDs(t, st.PID) {
			if !slices.Contains(st.Retiring, p) {
				live = append(live, p)
			}
		}
		return st.Running == want && len(st.Slots) == want && ready == want && st.Rollout == "" && len(live) == want
	})
	if !ok {
		t.Fatalf("%s: want %d workers; status %+v, worker processes not draining %v", what, want, st, live)
	}
}

// status is `lancelot status --json` inside the container.
func (c *container) status(t testing.TB) supervisor.Status {
	t.Helper()
	var st supervisor.Status
	out := c.sh(t, "lancelot status --json --pid-file /run/lancelot/lancelot.pid")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("lancelot status --json: %v\n%s", err, out)
	}
	return st
}

// cpuAffinityDropIn adds --cpu-affinity to the unit's own ExecStart=.
const cpuAffinityDropIn = "/etc/systemd/system/lancelot.service.d/cpu-affinity.conf"

// addCPUAffinity writes cpuAffinityDropIn with extra lines, and restarts.
func (c *container) addCPUAffinity(t *testing.T, extra string) {
	t.Helper()
	unit, err := os.ReadFile("../../configs/lancelot.service")
	if err != nil {
		t.Fatal(err)
	}
	start := regexp.MustCompile(`(?m)^ExecStart=(.*)$`).FindStringSubmatch(string(unit))
	if start == nil {
		t.Fatal("no ExecStart= in configs/lancelot.service")
	}
	conf := "[Service]\nExecStart=\nExecStart=" + start[1] + " --cpu-affinity\n" + extra
	c.sh(t, "mkdir -p /etc/systemd/system/lancelot.service.d && printf '%s' '"+conf+"' >"+cpuAffinityDropIn+
		" && systemctl daemon-reload && systemctl reset-failed "+unitName+"; systemctl restart "+unitName)
	t.Cleanup(func() {
		c.sh(t, "rm -f "+cpuAffinityDropIn+" && systemctl daemon-reload && systemctl restart "+unitName)
	})
	c.waitServing(t)
}

// CPUAffinity: with --cpu-affinity (a drop-in), each worker is pinned to
// a CPU of its own, after a reload and an upgrade too; the filter lets
// sched_setaffinity through.
func (c *container) testCPUAffinity(t *testing.T) {
	c.addCPUAffinity(t, "")
	l := c.startLoad(t)
	c.checkPinned(t, "at start")
	c.sh(t, "systemctl reload "+unitName)
	c.waitServing(t)
	c.checkPinned(t, "after systemctl reload")
	c.upgrade(t, "--kill-whom=main")
	c.checkPinned(t, "after an upgrade")
	l.stopNoFailures(t)
}

// checkPinned checks that every thread of every serving worker may run on
// one CPU only, a different one per worker, and that each worker logged
// so; nothing logged "cpu affinity not applied".
func (c *container) checkPinned(t *testing.T, when string) {
	t.Helper()
	workers := c.servingPIDs(t)
	inv := c.show(t, "InvocationID")["InvocationID"]
	pinned := func(j string, pid int) bool {
		return regexp.MustCompile(fmt.Sprintf(`msg="pinned to CPU" slot=\d+ pid=%d cpu=\d+`, pid)).MatchString(j)
	}
	// A worker pins itself before it reports ready, but its log line
	// may reach the journal after the supervisor's.
	var j string
	pollUntil(5*time.Second, func() bool {
		j = c.journal(t, "_SYSTEMD_INVOCATION_ID="+inv)
		return !slices.ContainsFunc(workers, func(w int) bool { return !pinned(j, w) })
	})
	if w := grepLines(j, "cpu affinity not applied"); w != "" {
		t.Errorf("%s: %s", when, w)
	}
	cpus := map[string]int{}
	for _, w := range workers {
		if !pinned(j, w) {
			t.Errorf("%s: worker %d logged no `pinned to CPU`:\n%s", when, w, grepLines(j, "pinned", "affinity"))
		}
		out := c.sh(t, fmt.Sprintf("grep -h Cpus_allowed_list /proc/%d/task/*/status", w))
		allowed := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			allowed[strings.TrimSpace(strings.TrimPrefix(line, "Cpus_allowed_list:"))] = true
		}
		if len(allowed) != 1 {
			t.Errorf("%s: worker %d's threads may run on %v; want one CPU for all", when, w, allowed)
			continue
		}
		for cpu := range allowed {
			if strings.ContainsAny(cpu, ",-") {
				t.Errorf("%s: worker %d may run on CPUs %s; want one", when, w, cpu)
			} else if other, dup := cpus[cpu]; dup {
				t.Errorf("%s: workers %d and %d both on CPU %s", when, other, w, cpu)
			}
			cpus[cpu] = w
		}
	}
	t.Logf("%s: workers on CPUs %v", when, cpus)
}

// DeniedCallLogged: the check runCase makes is not blind. With
// sched_setaffinity taken out of the filter, --cpu-affinity fails with
// "operation not permitted" in the journal, and the service still serves.
func (c *container) testDeniedCallLogged(t *testing.T) {
	cursor := c.cursor(t)
	c.addCPUAffinity(t, "SystemCallFilter=~sched_setaffinity\n")
	lancelottest.WaitFor(t, 10*time.Second, "the refused sched_setaffinity in the journal", func() bool {
		return strings.Contains(c.journalSince(t, cursor), "operation not permitted")
	})
	j := grepLines(c.journalSince(t, cursor), "operation not permitted")
	if !strings.Contains(j, "cpu affinity not applied") {
		t.Errorf("want `cpu affinity not applied` with the EPERM; got:\n%s", j)
	}
	t.Logf("with sched_setaffinity filtered out:\n%s", j)
	c.startLoad(t).stopNoFailures(t)
}
