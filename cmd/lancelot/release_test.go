package main

// Upgrades across releases: the previous release, built from the commit
// CHANGELOG.md names, and this build hand over to each other by USR2
// under load, as an operator's upgrade and rollback do.

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/camelot/lancelot/cmd/internal/proc"
	"github.com/camelot/lancelot/shared/lancelottest"
	"github.com/camelot/lancelot/shared/version"
)

// releaseCommits are the commits of the releases the tests build, for a
// CHANGELOG.md that does not name one yet (a release's heading gets its
// commit when the next release is made).
var releaseCommits = map[string]string{"0.2.0": "6aa9f0d", "0.3.0": "00deae7"}

// previousRelease returns the release before this one and its commit, as
// CHANGELOG.md lists them ("## 0.3.0 — commit 00deae7"): the first release
// heading below this version's, or the first one older than this version
// while CHANGELOG.md has no heading for it yet.
func previousRelease(t testing.TB) (release, commit string) {
	t.Helper()
	return releaseBefore(t, version.Version)
}

// releaseBefore returns the release CHANGELOG.md lists before release, and
// its commit.
func releaseBefore(t testing.TB, release string) (string, string) {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "CHANGELOG.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	heading := regexp.MustCompile(`^## (\d+\.\d+\.\d+)(?: — commit ([0-9a-f]{7,40}))?`)
	for sc := bufio.NewScanner(f); sc.Scan(); {
		m := heading.FindStringSubmatch(sc.Text())
		if m == nil || !olderRelease(m[1], release) {
			continue
		}
		if m[2] == "" {
			m[2] = releaseCommits[m[1]]
		}
		if m[2] != "" {
			return m[1], m[2]
		}
	}
	t.Fatalf("CHANGELOG.md names no release (with its commit) before %s", release)
	return "", ""
}

// olderRelease reports whether release a is older than b (x.y.z).
func olderRelease(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range min(len(pa), len(pb)) {
		x, _ := strconv.Atoi(pa[i])
		y, _ := strconv.Atoi(pb[i])
		if x != y {
			return x < y
		}
	}
	return len(pa) < len(pb)
}

func repoRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("git rev-parse --show-toplevel: %v: the release tests need a git clone", err)
	}
	return strings.TrimSpace(string(out))
}

// buildRelease builds the lancelot of commit from git history, once per
// machine (the build is cached in the user's cache directory). A clone
// without that history fails the test with what to do.
func buildRelease(t testing.TB, release, commit string) string {
	t.Helper()
	root := repoRoot(t)
	if err := exec.Command("git", "-C", root, "cat-file", "-e", commit+"^{commit}").Run(); err != nil {
		t.Fatalf("this clone lacks release %s (commit %s), which the upgrade tests build: "+
			"clone with history (git fetch --unshallow) or fetch that commit", release, commit)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	bin := filepath.Join(cache, "lancelot-test", "release-"+release+"-"+commit, "lancelot")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	src := t.TempDir()
	archive := exec.Command("sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", root, commit, src)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", commit, err, out)
	}
	tmp := bin + ".tmp"
	build := exec.Command("go", "build", "-buildvcs=false", "-o", tmp, "./cmd/lancelot")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build release %s: %v\n%s", release, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// install puts the binary at src where the server's executable is, as a
// package upgrade does: a rename, so the running file is untouched.
func install(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst+".new", b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dst+".new", dst); err != nil {
		t.Fatal(err)
	}
}

// pidFileWatch records every pid the pid file names while a test runs.
type pidFileWatch struct {
	mu   sync.Mutex
	seen []int
	stop chan struct{}
	done chan struct{}
}

func watchPIDFile(s *server) *pidFileWatch {
	w := &pidFileWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			if pid := s.pidFromFile(); pid > 0 {
				w.mu.Lock()
				if len(w.seen) == 0 || w.seen[len(w.seen)-1] != pid {
					w.seen = append(w.seen, pid)
				}
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return w
}

func (w *pidFileWatch) pids() []int {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen
}

// TestUpgradeAcrossReleases runs, under load with no failure allowed, the
// previous release → this build (the upgrade an operator does), this build
// → this build, and this build → the previous release (the rollback),
// each with `lancelot upgrade`. The counts TTIN moved survive every step.
func TestUpgradeAcrossReleases(t *testing.T) {
	release, commit := previousRelease(t)
	prev := buildRelease(t, release, commit)
	bin := filepath.Join(t.TempDir(), "lancelot")
	install(t, prev, bin)
	// Long-lived clients stay with the workers of the supervisor they
	// connected to, which serve them until they leave: a shutdown timeout
	// longer than the test keeps them from being cut at a question
	// boundary, which a client with a question in flight sees as EOF.
	s := launchServerBinary(t, bin, "--workers", "2", "--shutdown-timeout", "3m")
	watch := watchPIDFile(s)
	s.signal(syscall.SIGTTIN)
	lancelottest.WaitFor(t, 10*time.Second, "release "+release+" at 3 workers after TTIN", func() bool {
		return len(proc.Children(s.cmd.Process.Pid)) == 3
	})
	l := startLoad(t, s.addr, 4, 4)
	l.waitExchanges(500)
	steps := []struct {
		name, binary string
		this         bool // the binary is this build (it has status)
	}{
		{release + " → this build", binPath, true},
		{"this build → this build", binPath, true},
		{"this build → " + release, prev, false},
	}
	pids := []int{s.cmd.Process.Pid}
	t.Cleanup(func() {
		for _, pid := range pids {
			killSupervisor(pid)
		}
	})
	for _, step := range steps {
		pid := pids[len(pids)-1]
		install(t, step.binary, bin)
		before := l.progress()
		r := runCLI(t, time.Minute, "upgrade", "--pid-file", s.pidFile)
		next := s.pidFromFile()
		t.Logf("%s: `lancelot upgrade` took %v: %s%s", step.name, r.elapsed.Round(time.Millisecond), r.stdout, r.stderr)
		if r.code != 0 || next == pid || !proc.Alive(next) {
			t.Fatalf("%s: upgrade exited %d (%q), pid file names %d (was %d)", step.name, r.code, r.stderr, next, pid)
		}
		pids = append(pids, next)
		if ppid := proc.Parent(next); ppid == pid {
			t.Errorf("%s: the new supervisor %d is the old one's child: systemd would supervise it as not its own", step.name, next)
		}
		if want := fmt.Sprintf("upgraded: supervisor %d took over from %d\n", next, pid); r.stdout != want {
			t.Errorf("%s: upgrade printed %q, want %q", step.name, r.stdout, want)
		}
		checkCounts(t, step.name, next, step.this)
		l.waitExchanges(5000)
		after := l.progress()
		t.Logf("%s: %d exchanges, %d connections during the step; failures so far %v", step.name,
			after.Exchanges-before.Exchanges, after.Connections-before.Connections, after.ByKind)
	}
	l.requireNoFailures()
	// Between this build and 0.3.0 (handoff protocol 2) connections are
	// drained, and this build's side says so once per upgrade: as the
	// successor of 0.3.0, and as 0.3.0's predecessor. Not between two
	// of this build.
	if n := strings.Count(s.logs.String(), "drained, not handed over"); n != 2 {
		t.Errorf("%d log lines saying connections are drained, not handed over; want 2:\n%s", n, grepLines(s.logs.String(), "drained, not handed over"))
	}
	// Their clients gone, the old supervisors finish their drain.
	for _, pid := range pids[:len(pids)-1] {
		lancelottest.WaitFor(t, 20*time.Second, fmt.Sprintf("old supervisor %d gone once its clients left", pid), func() bool { return !proc.Alive(pid) })
	}
	seen := watch.pids()
	if !slices.Equal(seen, pids) {
		t.Errorf("the pid file named %v in turn, want exactly the supervisors that took over, %v", seen, pids)
	}
}

// checkCounts asserts a successor kept the counts: 3 running (TTIN), 2
// configured (the command line).
func checkCounts(t *testing.T, step string, pid int, hasStatus bool) {
	t.Helper()
	if !hasStatus {
		lancelottest.WaitFor(t, 10*time.Second, step+": 3 workers", func() bool { return len(proc.Children(pid)) == 3 })
		return
	}
	st, err := statusOfPID(pid)
	if err != nil {
		t.Fatalf("%s: status of %d: %v", step, pid, err)
	}
	if st.Running != 3 || st.Configured != 2 || st.Version.Version != version.Version || !allReady(st) {
		t.Errorf("%s: new supervisor runs %d workers, configured %d, version %s, all ready %v; want 3, 2, %s, true",
			step, st.Running, st.Configured, st.Version.Version, allReady(st), version.Version)
	}
	for _, sl := range st.Slots {
		if sl.Version != version.Version {
			t.Errorf("%s: slot %d's worker says version %q, want %s", step, sl.Slot, sl.Version, version.Version)
		}
	}
}

// killSupervisor ends a supervisor the test does not hold, and its workers.
func killSupervisor(pid int) {
	if pid <= 0 || !proc.Alive(pid) {
		return
	}
	workers := proc.Children(pid)
	syscall.Kill(pid, syscall.SIGTERM)
	lancelottest.Poll(10*time.Second, func() bool { return !proc.Alive(pid) })
	syscall.Kill(pid, syscall.SIGKILL)
	for _, w := range workers {
		syscall.Kill(w, syscall.SIGKILL)
	}
}

// TestUpgradeRefusesBadSuccessor: a successor that exits at once, one that
// announces a handoff protocol this release does not speak, and a program
// that is not lancelot are each refused at once, with one log line naming
// what was found; the old supervisor serves on and keeps the pid file.
func TestUpgradeRefusesBadSuccessor(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, script, copyOf, want string
	}{
		{name: "exits at once", script: "#!/bin/sh\nexit 3\n", want: "failed: it exited"},
		{name: "unknown protocol", script: "#!/bin/sh\nprintf 'hello 4 9.0.0\\n' >&$((3 + LANCELOT_UPGRADE_FDS))\nexec sleep 30\n",
			want: "announced handoff protocol 4 (9.0.0)"},
		{name: "not lancelot", copyOf: goTool, want: "is not lancelot (a Go program built from cmd/go)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := copyBinary(t)
			s := launchServerBinary(t, bin, "--workers", "1")
			l := startLoad(t, s.addr, 2, 2)
			l.waitExchanges(100)
			if tc.copyOf != "" {
				install(t, tc.copyOf, bin)
			} else {
				writeFile(t, bin+".new", tc.script)
				os.Chmod(bin+".new", 0o755)
				os.Rename(bin+".new", bin)
			}
			r := runCLI(t, 30*time.Second, "upgrade", "--pid-file", s.pidFile)
			t.Logf("refused after %v: %s", r.elapsed.Round(time.Millisecond), strings.TrimSpace(r.stderr))
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("upgrade exited %d with %q; want one line with %q and a failure", r.code, r.stderr, tc.want)
			}
			if r.elapsed > 2*time.Second {
				t.Errorf("refused after %v: the successor could be told sooner", r.elapsed)
			}
			l.waitExchanges(100)
			l.requireNoFailures()
			if pid := s.pidFromFile(); pid != s.cmd.Process.Pid {
				t.Errorf("pid file names %d, want the old supervisor %d", pid, s.cmd.Process.Pid)
			}
			if n := strings.Count(s.logs.String(), `msg="binary upgrade refused; still serving"`); n != 1 {
				t.Errorf("%d refusal log lines, want 1:\n%s", n, s.logs)
			}
			st := mustStatus(t, s.pidFile)
			if st.State != "serving" || st.Upgrade {
				t.Errorf("after the refusal: state %s, upgrade in flight %v; want serving, none", st.State, st.Upgrade)
			}
		})
	}
}

// TestUpgradeFromRelease020Refused: this build no longer takes over from
// release 0.2.0 (handoff protocol 1). A USR2 to 0.2.0 starts this build,
// which says in one line to upgrade through 0.3.0 first and exits at once;
// 0.2.0 serves on, its clients see nothing, and its pid file still names
// it.
func TestUpgradeFromRelease020Refused(t *testing.T) {
	release, commit := releaseBefore(t, "0.3.0")
	old := buildRelease(t, release, commit)
	bin := filepath.Join(t.TempDir(), "lancelot")
	install(t, old, bin)
	s := launchServerBinary(t, bin, "--workers", "2")
	l := startLoad(t, s.addr, 4, 4)
	l.waitExchanges(500)
	install(t, binPath, bin)
	began := time.Now()
	s.signal(syscall.SIGUSR2)
	s.waitFor(15*time.Second, release+" to log its successor's failure", func() bool {
		return strings.Contains(s.logs.String(), `msg="binary upgrade failed; still serving"`)
	})
	t.Logf("%s noticed the refusal after %v", release, time.Since(began).Round(time.Millisecond))
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("the refusal took %v; want it at once", d)
	}
	logs := s.logs.String()
	lines := grepLines(logs, "upgrade it to release 0.3.0 first")
	if n := strings.Count(lines, "\n") + 1; lines == "" || n != 1 || !strings.Contains(lines, "release 0.2.0") {
		t.Errorf("the successor's log has %q; want one line naming 0.2.0 and saying to upgrade through 0.3.0 first", lines)
	}
	if pid := s.pidFromFile(); pid != s.cmd.Process.Pid {
		t.Errorf("pid file names %d, want %s %d", pid, release, s.cmd.Process.Pid)
	}
	if s.hasExited() {
		t.Fatalf("%s exited", release)
	}
	l.waitExchanges(l.progress().Exchanges + 1000)
	l.requireNoFailures()
}

// TestRollbackToRelease020Refused: a rollback straight to 0.2.0 is
// refused as soon as 0.2.0 says ready (its protocol 1 byte), and although
// 0.2.0 writes the pid file before that byte, the pid file names this
// build's supervisor again once `lancelot upgrade` returns.
func TestRollbackToRelease020Refused(t *testing.T) {
	release, commit := releaseBefore(t, "0.3.0")
	old := buildRelease(t, release, commit)
	bin := copyBinary(t)
	s := launchServerBinary(t, bin, "--workers", "2")
	l := startLoad(t, s.addr, 2, 2)
	l.waitExchanges(200)
	install(t, old, bin)
	r := runCLI(t, time.Minute, "upgrade", "--pid-file", s.pidFile)
	t.Logf("refused after %v: %s", r.elapsed.Round(time.Millisecond), strings.TrimSpace(r.stderr))
	if r.code == 0 || !strings.Contains(r.stderr, "release 0.2.0's ready byte") {
		t.Errorf("upgrade exited %d with %q; want the refusal of 0.2.0's ready byte", r.code, r.stderr)
	}
	if pid := s.pidFromFile(); pid != s.cmd.Process.Pid {
		t.Errorf("pid file names %d after the refusal, want %d", pid, s.cmd.Process.Pid)
	}
	l.waitExchanges(l.progress().Exchanges + 200)
	l.requireNoFailures()
}
