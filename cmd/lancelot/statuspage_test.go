package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/lancelottest"
	"github.com/camelot/lancelot/supervisor"
)

// hostileName is a directory name a page that did not escape would turn
// into markup: an image whose error handler renames the page, and a bold.
const hostileName = `ops<img src=x onerror="document.title='pwned'">&<b>bold`

// TestStatusPageChromium loads the status page of a running lancelot in
// headless Chromium: its rows are the slots and pids `lancelot status
// --json` shows, a TTIN adds a row, /status.json is that same state, and
// the configuration file's path, whose directory name is markup, is shown
// as text (no element made of it, no handler run).
func TestStatusPageChromium(t *testing.T) {
	chromium := requireTool(t, "chromium")
	dir := filepath.Join(t.TempDir(), hostileName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "lancelot.yaml")
	if err := os.WriteFile(config, []byte("workers: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	maddr := fmt.Sprintf("127.0.0.1:%d", lancelottest.FreePort(t))
	s := startServer(t, "--config", config, "--metrics", maddr)
	url := "http://" + maddr + "/"

	st := s.waitQuiet()
	dom := dumpDOM(t, chromium, url)
	checkRows(t, dom, st)
	checkEscaped(t, dom, config)

	s.signal(syscall.SIGTTIN)
	st = s.waitHandled("TTIN", 1)
	if len(st.Slots) != 3 {
		t.Fatalf("want 3 slots after TTIN, have %+v", st.Slots)
	}
	checkRows(t, dumpDOM(t, chromium, url), st)

	checkStatusJSON(t, maddr, s)
}

// dumpDOM is the DOM Chromium renders from url, serialized.
func dumpDOM(t *testing.T, chromium, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--dump-dom", url)
	// Its own process group, so that the renderer and helper processes it
	// starts go with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil || !strings.Contains(string(out), `id="workers"`) {
		t.Fatalf("chromium --dump-dom %s: %v\n%s\nstderr: %s", url, err, out, stderr.String())
	}
	return string(out)
}

var workerRow = regexp.MustCompile(`<tr class="worker" data-slot="(\d+)" data-pid="([^"]*)">`)

// checkRows: the page has one row per slot, with the slot's pid.
func checkRows(t *testing.T, dom string, st supervisor.Status) {
	t.Helper()
	var have, want []string
	for _, m := range workerRow.FindAllStringSubmatch(dom, -1) {
		have = append(have, m[1]+":"+m[2])
	}
	for _, sl := range st.Slots {
		want = append(want, strconv.Itoa(sl.Slot)+":"+strconv.Itoa(sl.PID))
	}
	if !slices.Equal(have, want) {
		t.Errorf("page rows (slot:pid) %v, want %v as lancelot status --json shows", have, want)
	}
}

// checkEscaped: the configuration path is the text of its cell, and none
// of its markup became an element or ran.
func checkEscaped(t *testing.T, dom, path string) {
	t.Helper()
	// How a DOM serializer writes a text node.
	text := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(path)
	if !strings.Contains(dom, `<dd id="config-file">`+text+`</dd>`) {
		t.Errorf("configuration path not shown as text %q:\n%s", text, dom)
	}
	for _, bad := range []string{"<img", "<b>", "<title>pwned</title>"} {
		if strings.Contains(dom, bad) {
			t.Errorf("the page's DOM has %q: the path's markup was not escaped", bad)
		}
	}
}

// checkStatusJSON: /status.json is what `lancelot status --json` shows,
// but for the figures that move between the two reads.
func checkStatusJSON(t *testing.T, maddr string, s *server) {
	t.Helper()
	code, body := httpGet("http://" + maddr + "/status.json")
	if code != http.StatusOK {
		t.Fatalf("GET /status.json: %d", code)
	}
	var page supervisor.Status
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatalf("/status.json: %v: %s", err, body)
	}
	cli := s.status()
	if !reflect.DeepEqual(steady(page), steady(cli)) {
		t.Errorf("/status.json and lancelot status --json differ:\n%+v\n%+v", page, cli)
	}
	var fields map[string]any
	json.Unmarshal(body, &fields)
	for _, k := range []string{"pid", "version", "state", "slots", "sockets", "uptime_seconds"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("/status.json has no %q", k)
		}
	}
}

// steady is st without what changes from one read to the next.
func steady(st supervisor.Status) supervisor.Status {
	st.UptimeSeconds = 0
	st.Slots = slices.Clone(st.Slots)
	for i := range st.Slots {
		sl := &st.Slots[i]
		sl.UptimeSeconds, sl.Connections, sl.Answered, sl.QuestionsPerSecond = 0, 0, 0, 0
	}
	return st
}
