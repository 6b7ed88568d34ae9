package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/lancelottest"
	"github.com/camelot/lancelot/shared/version"
	"github.com/camelot/lancelot/supervisor"
)

// buildRevision is the commit TestMain built from, when the tests run in a
// git checkout ("" otherwise).
func buildRevision() string {
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func TestVersion(t *testing.T) {
	t.Parallel()
	var info version.Info
	r := runCLI(t, 10*time.Second, "version", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil || r.code != 0 {
		t.Fatalf("version --json: exit %d, %q: %v", r.code, r.stdout, err)
	}
	if info.Version != version.Version || info.Go != runtime.Version() || info.Revision == "" {
		t.Errorf("version --json = %+v, want version %s, go %s, a revision", info, version.Version, runtime.Version())
	}
	if rev := buildRevision(); rev != "" && os.Getenv("LANCELOT_TEST_BIN") == "" && info.Revision != rev {
		t.Errorf("revision %q, want the checkout's %q", info.Revision, rev)
	}
	want := fmt.Sprintf("lancelot %s (revision %s, modified: %t, %s)\n", info.Version, info.Revision, info.Modified, info.Go)
	for _, args := range [][]string{{"version"}, {"--version"}} {
		if r := runCLI(t, 10*time.Second, args...); r.code != 0 || r.stdout != want || r.stderr != "" {
			t.Errorf("lancelot %v: exit %d, stdout %q, stderr %q; want 0 and %q", args, r.code, r.stdout, r.stderr, want)
		}
	}
}

// TestVersionWhileRunning: the version shows in the first log line, in
// status (text and JSON, the supervisor and each worker) and as
// lancelot_build_info.
func TestVersionWhileRunning(t *testing.T) {
	t.Parallel()
	maddr := "127.0.0.1:" + strconv.Itoa(lancelottest.FreePort(t))
	s := startServer(t, "--workers", "2", "--metrics", maddr)
	first, _, _ := strings.Cut(s.logs.String(), "\n")
	if !strings.Contains(first, `msg="lancelot starting" version=`+version.Version+" revision=") {
		t.Errorf("first log line %q, want lancelot starting with the version", first)
	}
	st := s.waitQuiet()
	if st.Version.Version != version.Version || st.Version.Revision == "" {
		t.Errorf("status version %+v, want %s and a revision", st.Version, version.Version)
	}
	for _, sl := range st.Slots {
		if sl.Version != version.Version {
			t.Errorf("slot %d's worker: version %q, want %s", sl.Slot, sl.Version, version.Version)
		}
	}
	text := runCLI(t, 10*time.Second, "status", "--pid-file", s.pidFile).stdout
	if !strings.Contains(text, "(lancelot "+version.Version+", revision ") || strings.Count(text, ", lancelot "+version.Version+",") != 2 {
		t.Errorf("status text does not name the version of the supervisor and both workers:\n%s", text)
	}
	key := fmt.Sprintf(`lancelot_build_info{goversion=%q,revision=%q,version=%q}`, runtime.Version(), st.Version.Revision, version.Version)
	if v, ok := scrape(t, maddr)[key]; !ok || v != 1 {
		t.Errorf("metrics lack %s 1", key)
	}
}

// TestCheck: check reads flags and the file exactly as serve does, and
// binds nothing: an address another process holds is still OK.
func TestCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := dir + "/good.yaml"
	writeFile(t, good, "workers: 3\nanswers:\n  \"Who are you?\": \"A knight.\"\n")
	bad := dir + "/bad.yaml"
	writeFile(t, bad, "wrokers: 3\n")
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	for _, tc := range []struct {
		args    []string
		wantErr string // "" for OK
	}{
		// Success cases
		{[]string{}, ""},
		{[]string{"--config", good}, ""},
		{[]string{"--listen", held.Addr().String()}, ""},
		{[]string{"127.0.0.1"}, ""},
		// Failure cases: serve's own messages
		{[]string{"--config", bad}, `config ` + bad + `: unknown key "wrokers"`},
		{[]string{"--workers", "0"}, "--workers 0: must be between 1 and 1024"},
		{[]string{"--config", dir + "/missing.yaml"}, "no such file"},
		{[]string{"--listen", "nonsense"}, `--listen "nonsense"`},
		{[]string{"--no-such-flag"}, "flag provided but not defined: --no-such-flag"},
	} {
		r := runCLI(t, 10*time.Second, append([]string{"check"}, tc.args...)...)
		if tc.wantErr == "" {
			if r.code != 0 || r.stdout != "configuration OK\n" || r.stderr != "" {
				t.Errorf("check %q: exit %d, stdout %q, stderr %q; want 0 and configuration OK", tc.args, r.code, r.stdout, r.stderr)
			}
			continue
		}
		// A command-line error exits 2, a rejected configuration 1.
		code := 1
		if strings.Contains(tc.wantErr, "not defined") {
			code = 2
		}
		if r.code != code || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, tc.wantErr) {
			t.Errorf("check %q: exit %d, stdout %q, stderr %q; want %d and one line with %q", tc.args, r.code, r.stdout, r.stderr, code, tc.wantErr)
		}
	}
}

// TestUpgradeCommandFailures: what `lancelot upgrade` says when it cannot
// confirm an upgrade, in one line and a non-zero exit.
func TestUpgradeCommandFailures(t *testing.T) {
	bin := copyBinary(t)
	s := launchServerBinary(t, bin, "--workers", "1")
	// A successor that never says anything keeps the upgrade in flight
	// until its hello deadline.
	writeFile(t, bin+".new", "#!/bin/sh\nexec sleep 30\n")
	os.Chmod(bin+".new", 0o755)
	os.Rename(bin+".new", bin)
	r := runCLI(t, 10*time.Second, "upgrade", "--pid-file", s.pidFile, "--timeout", "500ms")
	if r.code == 0 || !strings.Contains(r.stderr, "timed out") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("upgrade --timeout 500ms: exit %d, %q; want a one-line timeout", r.code, r.stderr)
	}
	s.waitStatus("the upgrade still in flight", func(st supervisor.Status) bool { return st.Upgrade })
	r = runCLI(t, 10*time.Second, "upgrade", "--pid-file", s.pidFile)
	if r.code == 0 || !strings.Contains(r.stderr, "another binary upgrade is in flight") {
		t.Errorf("second upgrade: exit %d, %q; want another upgrade in flight", r.code, r.stderr)
	}
	st := s.waitStatus("the silent successor refused", func(st supervisor.Status) bool { return !st.Upgrade })
	if st.State != "serving" || s.pidFromFile() != s.cmd.Process.Pid {
		t.Errorf("after the refusal: %s, pid file %d; want serving, %d", st.State, s.pidFromFile(), s.cmd.Process.Pid)
	}
	for _, args := range [][]string{{"upgrade"}, {"upgrade", "--pid", "1", "--pid-file", "x"}, {"upgrade", "--pid-file", s.dir + "/nope"}} {
		if r := runCLI(t, 10*time.Second, args...); r.code == 0 || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("lancelot %q: exit %d, %q; want one line and a failure", args, r.code, r.stderr)
		}
	}
}
