package statuspage

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/camelot/lancelot/shared/version"
	"github.com/camelot/lancelot/supervisor"
)

const hostile = `<script>alert("x")</script><img src=http://example.com/x>'&`

// hostileStatus puts a hostile string in every string the page prints.
func hostileStatus() supervisor.Status {
	return supervisor.Status{
		PID: 7, Version: version.Info{Version: hostile, Revision: hostile, Go: hostile}, State: hostile,
		Running: 1, Configured: 1, Rollout: hostile, Queued: 2, Upgrade: true, Successor: 9, ConfigFile: hostile,
		Slots:   []supervisor.SlotStatus{{Slot: 0, PID: 8, State: hostile, Version: hostile, Serving: []int{0}, Lent: []int{}, QuestionsPerSecond: 12.34}},
		Sockets: []supervisor.SocketStatus{{ID: 0, Addr: hostile, ServedBy: []int{8}}},
	}
}

func get(t *testing.T, st supervisor.Status, path string) (*http.Response, string) {
	t.Helper()
	mux := http.NewServeMux()
	Register(mux, func() supervisor.Status { return st })
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func TestPageEscapesEverything(t *testing.T) {
	res, body := get(t, hostileStatus(), "/")
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("want 200 text/html, have %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, bad := range []string{"<script", "<img", "example.com/x>", `alert("x")`} {
		if strings.Contains(body, bad) {
			t.Errorf("page contains %q unescaped", bad)
		}
	}
	if !strings.Contains(body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
		t.Errorf("page does not show the hostile string escaped:\n%s", body)
	}
	if !strings.Contains(body, `<meta http-equiv="refresh" content="2">`) {
		t.Error("page does not refresh itself every 2 s")
	}
	if !strings.Contains(body, "12.3") {
		t.Error("page does not show the questions per second")
	}
}

// TestPageSelfContained: no script, and nothing loaded from anywhere.
func TestPageSelfContained(t *testing.T) {
	st := hostileStatus()
	st.Version.Version, st.Version.Revision, st.Version.Go, st.State, st.Rollout, st.ConfigFile = "0.4.0", "abc", "go1", "serving", "", "/etc/lancelot.yaml"
	st.Slots[0].State, st.Slots[0].Version, st.Sockets[0].Addr = "ready", "0.4.0", "127.0.0.1:1060"
	res, body := get(t, st, "/")
	for _, bad := range []string{"<script", "src=", "<link", "@import", "url(", "http://", "https://", "javascript:"} {
		if strings.Contains(strings.ToLower(body), bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("want a CSP that loads nothing, have %q", csp)
	}
}

func TestStatusJSONIsTheAdminEncoding(t *testing.T) {
	st := hostileStatus()
	res, body := get(t, st, "/status.json")
	want, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if res.Header.Get("Content-Type") != "application/json" || body != string(want)+"\n" {
		t.Errorf("want %s, have %q %s", want, res.Header.Get("Content-Type"), body)
	}
}

func TestOnlyTheRootIsThePage(t *testing.T) {
	for path, code := range map[string]int{"/": 200, "/status.json": 200, "/nothing": 404, "/index.html": 404} {
		if res, _ := get(t, hostileStatus(), path); res.StatusCode != code {
			t.Errorf("GET %s: want %d, have %d", path, code, res.StatusCode)
		}
	}
}
