package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/camelot/lancelot/shared/lancelottest"
)

func TestReadConfigFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := func(content string) string {
		path := filepath.Join(dir, fmt.Sprintf("c%d.yaml", len(content)))
		os.WriteFile(path, []byte(content), 0o644)
		return path
	}
	flags := serveFlags()
	for _, tc := range []struct {
		content string
		wantErr string // "" for none
	}{
		// Success cases
		{"", ""},
		{"# only comments\n# workers: 3\n", ""},
		{"workers: 3\nlisten: \":1060\"\n", ""},
		{"listen:\n  - 127.0.0.1:1060\n  - \"[::1]:1060\"\n", ""},
		{"answers:\n  \"Who?\": \"Me.\"\n", ""},
		// Failure cases
		{"- workers\n", "must be a map of settings"},
		{"workers: 1\nworkers: 2\n", `"workers" is set twice`},
		{"answers:\n  \"Who?\": \"Me.\"\n  \"Who?\": \"You.\"\n", `question "Who?" is listed twice`},
		{"answers: 5\n", "answers: line 1: must be a map of question: answer"},
		{"answers:\n  \"Who?\": [1]\n", "must be strings"},
		{"listen: 5\n", "listen: 5 is not a string or a list of strings"},
		{"listen: [a:1, 2]\n", "is not a string or a list of strings"},
		{"wrokers: 2\nworkrs: 1\n", `unknown keys "workrs", "wrokers"`},
	} {
		f, err := readConfigFile(file(tc.content))
		if err == nil {
			err = f.check(flags)
		}
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("config %q: %v, want error %q", tc.content, err, tc.wantErr)
		}
	}
}

// TestListenList: --listen repeats, listen: takes a string or a list, the
// command line replaces the file's list, and a repeated address is refused.
func TestListenList(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	list := filepath.Join(dir, "list.yaml")
	writeFile(t, list, "listen:\n  - 127.0.0.1:1\n  - 127.0.0.2:2\n")
	one := filepath.Join(dir, "one.yaml")
	writeFile(t, one, "listen: 127.0.0.3:3\n")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{nil, []string{":1060"}},
		{[]string{"--listen", "127.0.0.1:1", "--listen", "[::1]:1"}, []string{"127.0.0.1:1", "[::1]:1"}},
		{[]string{"--config", list}, []string{"127.0.0.1:1", "127.0.0.2:2"}},
		{[]string{"--config", one}, []string{"127.0.0.3:3"}},
		{[]string{"--config", list, "--listen", "127.0.0.9:9"}, []string{"127.0.0.9:9"}},
		{[]string{"127.0.0.5"}, []string{"127.0.0.5:1060"}},
	} {
		var got []string
		app := newApp(func(_ *cli.Context, s serveSettings) error {
			got = s.cfg.Listen
			return nil
		})
		if err := app.Run(append([]string{"lancelot", "serve"}, tc.args...)); err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("serve %q: listen %q, %v; want %q", tc.args, got, err, tc.want)
		}
	}
	r := runCLI(t, 10*time.Second, "check", "--listen", "127.0.0.1:1", "--listen", "127.0.0.1:1")
	if r.code != 1 || !strings.Contains(r.stderr, `--listen "127.0.0.1:1": listed twice`) {
		t.Errorf("the same address twice: exit %d, %q; want 1 and listed twice", r.code, r.stderr)
	}
}

// TestLargeAnswersTable: a table far above the 128 KiB one environment
// string may hold is served, after start and after a reload.
func TestLargeAnswersTable(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "answers.yaml")
	var b strings.Builder
	b.WriteString("answers:\n")
	for i := range 10000 {
		fmt.Fprintf(&b, "  \"What is the airspeed velocity of swallow number %d?\": \"Answer number %d.\"\n", i, i)
	}
	writeFile(t, path, b.String())
	s := startServer(t, "--workers", "2", "--config", path)
	ask := func() {
		c := lancelottest.Dial(t, s.addr)
		c.Send("What is the airspeed velocity of swallow number 9999?")
		c.ExpectAll("Answer number 9999.")
	}
	ask()
	s.reload()
	ask()
}
