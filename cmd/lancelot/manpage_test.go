package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/version"
)

// TestManPages: `lancelot gendocs` writes one page per visible command and
// lancelot(1), each proper roff that man(1) renders without a warning, with
// the sections a man page has, the command's real synopsis, every option
// with its placeholder, type and default, and the version and date in the
// footer.
func TestManPages(t *testing.T) {
	t.Parallel()
	man := requireTool(t, "man")
	dir := t.TempDir()
	cmd := exec.Command(binPath, "gendocs", dir)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1764979200") // 2025-12-06
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gendocs: %v\n%s", err, out)
	}
	app := newApp(runServe)
	pages := map[string]string{"lancelot": "lancelot [--version] COMMAND [OPTIONS] [ARGUMENTS...]"}
	for _, c := range app.VisibleCommands() {
		synopsis := "lancelot " + c.Name + " [OPTIONS]"
		if c.ArgsUsage != "" {
			synopsis += " " + c.ArgsUsage
		}
		pages["lancelot-"+c.Name] = synopsis
	}
	for name, synopsis := range pages {
		text := renderMan(t, man, filepath.Join(dir, "man1", name+".1"))
		sections := []string{"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "ENVIRONMENT", "SEE ALSO"}
		if name == "lancelot" || name == "lancelot-serve" {
			sections = append(sections, "SIGNALS", "FILES")
		}
		for _, s := range sections {
			if !strings.Contains(text, "\n"+s+"\n") {
				t.Errorf("%s(1) has no %s section", name, s)
			}
		}
		for _, want := range []string{
			"\n       " + name + " - ",
			"\n       " + synopsis + "\n",
			"lancelot " + version.Version,
			"2025-12-06",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("%s(1) lacks %q", name, want)
			}
		}
		for _, bad := range []string{"[value]", `=""`, "(default:", "lancelot-" + strings.TrimPrefix(name, "lancelot-") + " ["} {
			if strings.Contains(text, bad) {
				t.Errorf("%s(1) contains %q", name, bad)
			}
		}
		if t.Failed() {
			t.Logf("%s(1):\n%s", name, text)
		}
	}
	serve := renderMan(t, man, filepath.Join(dir, "man1", "lancelot-serve.1"))
	for _, want := range []string{"--workers N", "Type: integer. Default: the CPUs", "--idle-timeout DURATION", "Default: 5m0s", "--listen ADDR", "--config FILE"} {
		if !strings.Contains(serve, want) {
			t.Errorf("lancelot-serve(1) lacks %q", want)
		}
	}
}

// renderMan renders a page with man -l and fails on any warning.
func renderMan(t *testing.T, man, page string) string {
	t.Helper()
	cmd := exec.Command(man, "--warnings", "-E", "UTF-8", "-l", page)
	cmd.Env = append(os.Environ(), "MANWIDTH=200", "MAN_KEEP_FORMATTING=", "LC_ALL=C.UTF-8", "MANPAGER=cat", "PAGER=cat")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := runBounded(cmd, 30*time.Second); err != nil || stderr.Len() > 0 {
		t.Errorf("man --warnings -l %s: %v, warnings:\n%s", filepath.Base(page), err, stderr.String())
	}
	return stdout.String()
}
