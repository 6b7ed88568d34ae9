package main

// The Debian package (docs/packaging/build.sh). TestPackage checks what
// build.sh produces (file list, control fields, generated files, lintian);
// TestPackageUpgrade installs it under a real systemd (the harness of
// realsystemd_test.go): the previous release's package, then this one,
// then the previous one again, under load, and purges it.

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
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

	"gopkg.in/yaml.v3"

	"github.com/camelot/lancelot/shared/lancelottest"
	"github.com/camelot/lancelot/shared/version"
)

const buildScript = "../../docs/packaging/build.sh"

// packageMaintainer is the Maintainer build.sh writes by default.
const packageMaintainer = "Lancelot Maintainers <lancelot-maintainers@camelot.dev>"

// packageFiles are the files the package must ship (besides man pages).
var packageFiles = []string{
	"/usr/bin/lancelot",
	"/lib/systemd/system/lancelot.service",
	"/lib/systemd/system/lancelot.socket",
	"/etc/lancelot/lancelot.yaml",
	"/usr/share/bash-completion/completions/lancelot",
	"/usr/share/zsh/vendor-completions/_lancelot",
	"/usr/share/fish/vendor_completions.d/lancelot.fish",
	"/usr/share/doc/lancelot/copyright",
	"/usr/share/doc/lancelot/changelog.gz",
	"/usr/share/doc/lancelot/README.md.gz",
	"/usr/share/doc/lancelot/CHANGELOG.md.gz",
	"/usr/share/doc/lancelot/docs/reference.md.gz",
	"/usr/share/doc/lancelot/docs/operations.md.gz",
	"/usr/share/doc/lancelot/docs/protocol.md.gz",
}

// buildPackage runs build.sh into dir and returns the .deb's path. An
// empty binary packages the tree's own build; pkgVersion "" lets build.sh
// ask the binary.
func buildPackage(t *testing.T, dir, binary, pkgVersion string) string {
	t.Helper()
	args := []string{buildScript, dir}
	if binary != "" {
		args = append(args, binary)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", args...)
	cmd.Env = append(os.Environ(), "VERSION="+pkgVersion)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	if err := runBounded(cmd, 10*time.Minute); err != nil {
		t.Fatalf("build.sh %s: %v\n%s", strings.Join(args[1:], " "), err, stderr.String())
	}
	deb := strings.TrimSpace(stdout.String())
	t.Logf("built %s in %v", filepath.Base(deb), time.Since(began).Round(time.Millisecond))
	return deb
}

// debArch is Debian's name for this machine's GOARCH (build.sh's map).
func debArch() string {
	switch runtime.GOARCH {
	case "386":
		return "i386"
	case "arm":
		return "armhf"
	case "ppc64le":
		return "ppc64el"
	}
	return runtime.GOARCH
}

func TestPackage(t *testing.T) {
	skipIfShort(t)
	for _, tool := range []string{"dpkg-deb", "lintian", "dpkg"} {
		requireTool(t, tool)
	}
	deb := buildPackage(t, t.TempDir(), "", "")
	if want := fmt.Sprintf("lancelot_%s_%s.deb", version.Version, debArch()); filepath.Base(deb) != want {
		t.Errorf("package file %s, want %s", filepath.Base(deb), want)
	}
	t.Run("Files", func(t *testing.T) { checkPackageFiles(t, deb) })
	t.Run("Control", func(t *testing.T) { checkPackageControl(t, deb) })
	root := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", deb, root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
	}
	t.Run("Units", func(t *testing.T) { checkPackageUnits(t, root) })
	t.Run("Conffile", func(t *testing.T) { checkPackageConffile(t, root) })
	t.Run("Docs", func(t *testing.T) { checkPackageDocs(t, root) })
	t.Run("Lintian", func(t *testing.T) {
		out, _ := exec.Command("lintian", "--pedantic", deb).CombinedOutput()
		t.Logf("lintian --pedantic:\n%s", out)
		if errs := regexp.MustCompile(`(?m)^E: .*$`).FindAll(out, -1); len(errs) > 0 {
			t.Errorf("lintian errors:\n%s", bytes.Join(errs, []byte("\n")))
		}
		// The man pages: no tag of any level (groff warnings, a bad
		// whatis line, a missing page).
		if tags := regexp.MustCompile(`(?m)^.: .*manpage.*$`).FindAll(out, -1); len(tags) > 0 {
			t.Errorf("lintian on the man pages:\n%s", bytes.Join(tags, []byte("\n")))
		}
		for _, tag := range []string{"copyright-without-copyright-notice", "unknown-license", "placeholder", "bogus-mail-host"} {
			if bytes.Contains(out, []byte(tag)) {
				t.Errorf("lintian tag %s:\n%s", tag, out)
			}
		}
	})
}

// checkPackageFiles: dpkg-deb -c lists every file, and a man page for
// lancelot and for each visible command.
func checkPackageFiles(t *testing.T, deb string) {
	out, err := exec.Command("dpkg-deb", "-c", deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb -c: %v", err)
	}
	t.Logf("dpkg-deb -c:\n%s", out)
	have := map[string]string{} // path -> mode
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		have[strings.TrimPrefix(f[len(f)-1], ".")] = f[0]
	}
	want := slices.Clone(packageFiles)
	want = append(want, "/usr/share/man/man1/lancelot.1.gz")
	for _, cmd := range newApp(runServe).VisibleCommands() {
		want = append(want, "/usr/share/man/man1/lancelot-"+cmd.Name+".1.gz")
	}
	for _, f := range want {
		if _, ok := have[f]; !ok {
			t.Errorf("the package lacks %s", f)
		}
	}
	if have["/usr/bin/lancelot"] != "-rwxr-xr-x" {
		t.Errorf("/usr/bin/lancelot mode %s, want -rwxr-xr-x", have["/usr/bin/lancelot"])
	}
}

// checkPackageControl: the control fields, the conffile and the scripts.
func checkPackageControl(t *testing.T, deb string) {
	fields := map[string]string{
		"Package": "lancelot", "Version": version.Version, "Architecture": debArch(),
		"Section": "net", "Priority": "optional", "Depends": "libc6",
	}
	for k, want := range fields {
		if out, err := exec.Command("dpkg-deb", "-f", deb, k).Output(); err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("control field %s = %q (%v), want %q", k, strings.TrimSpace(string(out)), err, want)
		}
	}
	if out, _ := exec.Command("dpkg-deb", "-f", deb, "Maintainer").Output(); strings.TrimSpace(string(out)) != packageMaintainer {
		t.Errorf("control field Maintainer = %q, want %q", strings.TrimSpace(string(out)), packageMaintainer)
	}
	for _, k := range []string{"Description", "Homepage"} {
		if out, _ := exec.Command("dpkg-deb", "-f", deb, k).Output(); len(bytes.TrimSpace(out)) == 0 {
			t.Errorf("control field %s is empty", k)
		}
	}
	ctl := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-e", deb, ctl).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -e: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(ctl, "conffiles")); strings.TrimSpace(string(b)) != "/etc/lancelot/lancelot.yaml" {
		t.Errorf("conffiles = %q, want /etc/lancelot/lancelot.yaml", b)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		b, err := os.ReadFile(filepath.Join(ctl, s))
		if err != nil {
			t.Errorf("no %s: %v", s, err)
			continue
		}
		if p := regexp.MustCompile(`@[A-Z_]+@`).Find(b); p != nil {
			t.Errorf("%s has an unfilled placeholder %s", s, p)
		}
	}
	postinst, _ := os.ReadFile(filepath.Join(ctl, "postinst"))
	for _, want := range []string{"systemctl kill -s USR2 --kill-whom=main", `check_args="--config /etc/lancelot/lancelot.yaml`} {
		if !bytes.Contains(postinst, []byte(want)) {
			t.Errorf("postinst lacks %q", want)
		}
	}
}

// checkPackageUnits: the units are configs/'s, pointing at /usr/bin.
func checkPackageUnits(t *testing.T, root string) {
	for _, u := range []string{"lancelot.service", "lancelot.socket"} {
		got, err := os.ReadFile(filepath.Join(root, "lib/systemd/system", u))
		if err != nil {
			t.Fatal(err)
		}
		src, err := os.ReadFile(filepath.Join("../../configs", u))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(got, []byte("/usr/local")) {
			t.Errorf("%s still names /usr/local", u)
		}
		// Every line of configs/ is there, with /usr/bin for /usr/local/bin.
		want := strings.ReplaceAll(string(src), "/usr/local/bin/lancelot", "/usr/bin/lancelot")
		for _, line := range strings.Split(want, "\n") {
			if !strings.HasPrefix(line, "#") && !strings.Contains(string(got), line) {
				t.Errorf("%s lacks configs/%s's line %q", u, u, line)
			}
		}
	}
}

// checkPackageConffile: every setting commented out (so a release that
// knows fewer keys accepts it), and this build's check accepts it.
func checkPackageConffile(t *testing.T, root string) {
	path := filepath.Join(root, "etc/lancelot/lancelot.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil || len(doc) != 0 {
		t.Errorf("the conffile sets %v (%v); want every setting commented out", doc, err)
	}
	if !bytes.Contains(b, []byte("# listen:")) || !bytes.Contains(b, []byte("# answers:")) {
		t.Errorf("the conffile lacks configs/lancelot.yaml's settings (commented out)")
	}
	if out, err := exec.Command(filepath.Join(root, "usr/bin/lancelot"), "check", "--config", path).CombinedOutput(); err != nil {
		t.Errorf("the packaged lancelot check --config: %v\n%s", err, out)
	}
}

// checkPackageDocs: the man pages, completions, copyright and changelog.
func checkPackageDocs(t *testing.T, root string) {
	page := gunzip(t, filepath.Join(root, "usr/share/man/man1/lancelot-serve.1.gz"))
	for _, want := range []string{".TH LANCELOT-SERVE 1", `\fB\-\-pid\-file\fR`, ".SH EXIT STATUS", ".SH SEE ALSO"} {
		if !strings.Contains(page, want) {
			t.Errorf("lancelot-serve.1 lacks %q", want)
		}
	}
	checks := map[string][]string{
		"usr/share/bash-completion/completions/lancelot":    {"PROG=lancelot", "--generate-bash-completion"},
		"usr/share/zsh/vendor-completions/_lancelot":        {"#compdef lancelot", "--generate-bash-completion"},
		"usr/share/fish/vendor_completions.d/lancelot.fish": {"complete -c lancelot", "-a 'serve'"},
		"usr/share/doc/lancelot/copyright":                  {"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/", "License: Apache-2.0\n", "/usr/share/common-licenses/Apache-2.0", "Upstream-Contact: " + packageMaintainer},
	}
	for f, wants := range checks {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Error(err)
			continue
		}
		for _, want := range wants {
			if !bytes.Contains(b, []byte(want)) {
				t.Errorf("%s lacks %q", f, want)
			}
		}
	}
	changelog := gunzip(t, filepath.Join(root, "usr/share/doc/lancelot/changelog.gz"))
	if want := "lancelot (" + version.Version + ") "; !strings.HasPrefix(changelog, want) {
		t.Errorf("changelog starts %q, want %q", strings.SplitN(changelog, "\n", 2)[0], want)
	}
	// The tree's completion answers what the package's scripts ask.
	out, err := exec.Command(filepath.Join(root, "usr/bin/lancelot"), "--generate-bash-completion").Output()
	if err != nil || !strings.Contains(string(out), "serve\n") {
		t.Errorf("lancelot --generate-bash-completion: %q, %v; want the commands", out, err)
	}
}

func gunzip(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return string(b)
}

// TestPackageUpgrade: the previous release's package (at least 0.3.0; its
// binary built from git history, this packaging), upgraded to this
// release's package and downgraded back by dpkg -i under load, then a
// drop-in that moves the pid file and a reinstall, then purged. Each
// package change must hand over (a new MainPID, no restart) with no client
// failing.
func TestPackageUpgrade(t *testing.T) {
	if os.Getenv("LANCELOT_SYSTEMD_NSPAWN") != "1" {
		t.Skip("needs systemd as PID 1 of a container; " + realSystemdHowTo)
	}
	if os.Geteuid() != 0 {
		t.Fatal("LANCELOT_SYSTEMD_NSPAWN=1 but not root; " + realSystemdHowTo)
	}
	for _, tool := range []string{"bash", "debootstrap", "systemd-nspawn", "nsenter", "setsid", "flock", "dpkg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found; %s", tool, realSystemdHowTo)
		}
	}
	prev, commit := packageBase(t)
	// Until the release is bumped, this build says the base's version:
	// its package gets a later one.
	this := version.Version
	if this == prev {
		this += "+next"
	}
	prevBin := buildRelease(t, prev, commit)
	dir := t.TempDir()
	prevDeb := buildPackage(t, dir, prevBin, prev)
	thisDeb := buildPackage(t, dir, "", this)
	c := bootContainer(t)
	p := &pkgContainer{container: c, pidFile: "/run/lancelot/lancelot.pid"}
	p.copyIn(t, prevDeb, thisDeb)

	p.install(t, prevDeb, "fresh install of "+prev)
	p.checkRunning(t, prev, prev)
	if st := strings.TrimSpace(c.sh(t, "systemctl is-enabled "+unitName)); st != "enabled" {
		t.Errorf("after the fresh install %s is %s, want enabled", unitName, st)
	}
	l := c.startLoad(t)
	restarts := c.show(t, "NRestarts")["NRestarts"]
	p.upgrade(t, thisDeb, this, version.Version)
	p.upgrade(t, prevDeb, prev, prev)
	p.failedUpgrade(t, thisDeb, this, prev)
	// The retry, once the config is fixed, hands over.
	p.sh(t, "sed -i '/^log-level: loud$/d' /etc/lancelot/lancelot.yaml")
	old := p.mainPID(t)
	if out, code := p.dpkg(t, "--configure lancelot"); code != 0 || !strings.Contains(out, "handover done") {
		t.Fatalf("dpkg --configure after the fix: exit %d, want 0 and `handover done`:\n%s", code, out)
	}
	p.checkRunning(t, this, version.Version)
	p.waitGone(t, old)
	if got := c.show(t, "NRestarts")["NRestarts"]; got != restarts {
		t.Errorf("NRestarts %s after the upgrade and the downgrade, was %s: the service restarted", got, restarts)
	}
	l.stopNoFailures(t)
	// A drop-in moves the pid file: the handover waits for the one the
	// running supervisor writes, not the packaged unit's.
	p.sh(t, "mkdir -p /etc/systemd/system/lancelot.service.d && printf '[Service]\\nExecStart=\\nExecStart=/usr/bin/lancelot serve "+
		"--config /etc/lancelot/lancelot.yaml --pid-file /run/lancelot/moved.pid\\n' >/etc/systemd/system/lancelot.service.d/pid.conf && "+
		"systemctl daemon-reload && systemctl restart "+unitName)
	p.pidFile = "/run/lancelot/moved.pid"
	p.checkRunning(t, this, version.Version)
	p.upgrade(t, thisDeb, this, version.Version)
	p.sh(t, "rm -r /etc/systemd/system/lancelot.service.d && systemctl daemon-reload")
	p.purge(t)
}

// packageBase is the release TestPackageUpgrade upgrades from and rolls
// back to: the previous release, and at least 0.3.0 (commit 00deae7), the
// first whose supervisor has an admin socket and `lancelot upgrade`.
func packageBase(t *testing.T) (release, commit string) {
	prev, commit := previousRelease(t)
	if exec.Command("dpkg", "--compare-versions", prev, "lt", "0.3.0").Run() == nil {
		return "0.3.0", "00deae7"
	}
	return prev, commit
}

// pkgContainer drives dpkg in a booted container.
type pkgContainer struct {
	*container
	pidFile string // the service's --pid-file
}

// copyIn puts the packages in the container's /root, and this build's
// binary at /usr/local/bin/lancelot for startLoad's `lancelot bench`
// (the packaged /usr/bin/lancelot changes under it).
func (p *pkgContainer) copyIn(t *testing.T, debs ...string) {
	t.Helper()
	root := fmt.Sprintf("/proc/%d/root", p.pid1)
	for _, f := range append(debs, binPath) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(root, "root", filepath.Base(f))
		if f == binPath {
			dst = filepath.Join(root, "usr/local/bin/lancelot")
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// dpkg runs dpkg in the container and returns its output and exit code.
func (p *pkgContainer) dpkg(t *testing.T, args string) (string, int) {
	t.Helper()
	start := time.Now()
	out, errOut, code, err := p.run(5*time.Minute, "sh", "-c", "DEBIAN_FRONTEND=noninteractive dpkg --force-confold "+args+" </dev/null 2>&1")
	if err != nil {
		t.Fatalf("dpkg %s: %v\n%s%s", args, err, out, errOut)
	}
	t.Logf("dpkg %s: exit %d after %v\n%s", args, code, time.Since(start).Round(time.Millisecond), out)
	return out, code
}

func (p *pkgContainer) install(t *testing.T, deb, what string) {
	t.Helper()
	if out, code := p.dpkg(t, "-i /root/"+filepath.Base(deb)); code != 0 {
		t.Fatalf("%s: dpkg -i exited %d:\n%s", what, code, out)
	}
}

// upgrade installs deb over the running service and checks the handover.
// pkg and bin are the package's version and its binary's.
func (p *pkgContainer) upgrade(t *testing.T, deb, pkg, bin string) {
	t.Helper()
	old := p.mainPID(t)
	inv := p.show(t, "InvocationID")["InvocationID"]
	cursor := p.cursor(t)
	out, code := p.dpkg(t, "-i /root/"+filepath.Base(deb))
	// A stop and start (even one lancelot.socket hides from clients) is a
	// new invocation of the unit.
	if now := p.show(t, "InvocationID")["InvocationID"]; now != inv {
		t.Errorf("dpkg -i %s: the unit's InvocationID changed from %s to %s: it was stopped and started", filepath.Base(deb), inv, now)
	}
	if code != 0 || !strings.Contains(out, "handover done") {
		t.Fatalf("dpkg -i %s over pid %d: exit %d, want 0 and `handover done`:\n%s", filepath.Base(deb), old, code, out)
	}
	now := p.mainPID(t)
	if now == old || now == 0 {
		t.Errorf("MainPID %d after dpkg -i %s, was %d: no handover", now, filepath.Base(deb), old)
	}
	t.Logf("dpkg -i %s: MainPID %d -> %d", filepath.Base(deb), old, now)
	p.checkRunning(t, pkg, bin)
	p.waitGone(t, old)
	// The new main process is systemd's own child, so a stop waits for it
	// to drain (release 0.2.0's successor is a relay for this).
	if j := p.journalSince(t, cursor); strings.Contains(j, "not our child") {
		t.Errorf("dpkg -i %s: systemd supervises the new main process as not its child:\n%s", filepath.Base(deb), grepLines(j, "not our child"))
	}
}

// failedUpgrade: a configuration the new binary's `lancelot check`
// rejects stops the handover. dpkg -i fails, saying so, the package is
// left half-configured, and the previous release keeps serving.
func (p *pkgContainer) failedUpgrade(t *testing.T, deb, pkg, running string) {
	t.Helper()
	p.sh(t, "echo 'log-level: loud' >>/etc/lancelot/lancelot.yaml")
	old := p.mainPID(t)
	out, code := p.dpkg(t, "-i /root/"+filepath.Base(deb))
	if code == 0 || !strings.Contains(out, "HANDOVER FAILED") || !strings.Contains(out, "keeps serving") {
		t.Fatalf("dpkg -i %s with a bad config: exit %d; want non-zero and HANDOVER FAILED ... keeps serving:\n%s", filepath.Base(deb), code, out)
	}
	if now := p.mainPID(t); now != old {
		t.Errorf("MainPID %d after the failed handover, was %d", now, old)
	}
	if st := strings.Join(strings.Fields(p.sh(t, "dpkg-query -W -f '${db:Status-Abbrev} ${Version}' lancelot")), " "); st != "iF "+pkg {
		t.Errorf("dpkg-query after the failed handover: %q, want iF (half-configured) %s", st, pkg)
	}
	// The old binary, replaced on disk, still serves.
	if exe := strings.TrimSpace(p.sh(t, fmt.Sprintf("readlink /proc/%d/exe", old))); exe != "/usr/bin/lancelot (deleted)" {
		t.Errorf("main process %d runs %q, want the replaced release %s's /usr/bin/lancelot (deleted)", old, exe, running)
	}
	if st := p.show(t, "ActiveState")["ActiveState"]; st != "active" {
		t.Errorf("%s %s after the failed handover, want active", unitName, st)
	}
}

// checkRunning: the unit is active, its main process runs the packaged
// binary, the package is version pkg and its binary says bin (a release
// without `lancelot version`, bin "", must fail it), and the pid file names
// the main process.
func (p *pkgContainer) checkRunning(t *testing.T, pkg, bin string) {
	t.Helper()
	var st map[string]string
	lancelottest.WaitFor(t, 20*time.Second, "the unit active with a main process", func() bool {
		st = p.show(t, "ActiveState", "MainPID")
		return st["ActiveState"] == "active" && st["MainPID"] != "0"
	})
	if exe := strings.TrimSpace(p.sh(t, "readlink /proc/"+st["MainPID"]+"/exe")); exe != "/usr/bin/lancelot" {
		t.Errorf("main process %s runs %q, want /usr/bin/lancelot", st["MainPID"], exe)
	}
	if got := strings.TrimSpace(p.sh(t, "dpkg-query -W -f '${Version}' lancelot")); got != pkg {
		t.Errorf("dpkg-query: lancelot %s installed, want %s", got, pkg)
	}
	out, code := p.shCode(t, "/usr/bin/lancelot version --json 2>&1")
	switch {
	case bin != "" && (code != 0 || !strings.Contains(out, `"version":"`+bin+`"`)):
		t.Errorf("lancelot version --json: exit %d, %q; want version %s", code, out, bin)
	case bin == "" && code == 0:
		t.Errorf("lancelot version --json: exit 0, %q; package %s's binary has no version command", out, pkg)
	}
	if pid := strings.TrimSpace(p.sh(t, "cat "+p.pidFile)); pid != st["MainPID"] {
		t.Errorf("the pid file %s names %s, MainPID is %s", p.pidFile, pid, st["MainPID"])
	}
}

// purge removes the package and checks nothing is left.
func (p *pkgContainer) purge(t *testing.T) {
	t.Helper()
	cursor := p.cursor(t)
	if out, code := p.dpkg(t, "--purge lancelot"); code != 0 {
		t.Fatalf("dpkg --purge exited %d:\n%s", code, out)
	}
	// The stop is graceful: the supervisor drains, nothing is SIGKILLed.
	if j := p.journalSince(t, cursor); !strings.Contains(j, "Deactivated successfully") || strings.Contains(j, "SIGKILL") {
		t.Errorf("the stop at purge was not graceful; journal:\n%s", j)
	}
	if ps, _ := p.shCode(t, "ps -eo pid=,args= | grep '[/]usr/bin/lancelot'"); strings.TrimSpace(ps) != "" {
		t.Errorf("lancelot still runs after purge:\n%s", ps)
	}
	for _, u := range []string{unitName, "lancelot.socket"} {
		if st, _ := p.shCode(t, "systemctl is-active "+u); strings.TrimSpace(st) == "active" {
			t.Errorf("%s still active after purge", u)
		}
	}
	if ls, _ := p.shCode(t, "ls -d /etc/lancelot /run/lancelot /var/lib/lancelot /etc/systemd/system/*/lancelot.* 2>/dev/null"); strings.TrimSpace(ls) != "" {
		t.Errorf("left after purge:\n%s", ls)
	}
	if ss, _ := p.shCode(t, "ss -ltnH 'sport = :1060'"); strings.TrimSpace(ss) != "" {
		t.Errorf("something listens on :1060 after purge:\n%s", ss)
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(p.sh(t, "dpkg-query -W -f '${db:Status-Abbrev}' lancelot 2>/dev/null | wc -w"))); n != 0 {
		t.Errorf("dpkg still knows lancelot after purge: %s", p.sh(t, "dpkg-query -W lancelot 2>&1 || true"))
	}
}
