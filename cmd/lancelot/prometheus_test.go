package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/camelot/lancelot/cmd/internal/proc"
	"github.com/camelot/lancelot/shared/lancelottest"
)

// rulesDir holds the alert and recording rules and their unit tests.
const rulesDir = "../../configs/prometheus"

// ruleFile is a Prometheus rule file.
type ruleFile struct {
	Groups []struct {
		Name  string           `yaml:"name"`
		Rules []map[string]any `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(rulesDir, "lancelot.rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("lancelot.rules.yaml: %v", err)
	}
	return rf
}

// ruleNames are the alerts and the recorded series of rf.
func ruleNames(rf ruleFile) (alerts, records []string) {
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if a, ok := r["alert"].(string); ok {
				alerts = append(alerts, a)
			}
			if rec, ok := r["record"].(string); ok {
				records = append(records, rec)
			}
		}
	}
	return alerts, records
}

// TestPrometheusRules: promtool finds the rules valid and their unit tests
// pass; every alert has a test that expects it to fire, every recorded
// series a test of its value, and docs/operations.md explains every alert.
func TestPrometheusRules(t *testing.T) {
	promtool := requireTool(t, "promtool")
	for _, args := range [][]string{{"check", "rules", "lancelot.rules.yaml"}, {"test", "rules", "lancelot.rules.test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = rulesDir
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "SUCCESS") {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	alerts, records := ruleNames(readRules(t))
	if len(alerts) < 8 || len(records) < 3 {
		t.Fatalf("want at least 8 alerts and 3 recording rules, have %v and %v", alerts, records)
	}
	tests, err := os.ReadFile(filepath.Join(rulesDir, "lancelot.rules.test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rt struct {
		Tests []struct {
			Alerts []struct {
				Name string           `yaml:"alertname"`
				Exp  []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
			Exprs []struct {
				Expr string `yaml:"expr"`
			} `yaml:"promql_expr_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(tests, &rt); err != nil {
		t.Fatal(err)
	}
	fires, valued := map[string]bool{}, map[string]bool{}
	for _, tc := range rt.Tests {
		for _, a := range tc.Alerts {
			fires[a.Name] = fires[a.Name] || len(a.Exp) > 0
		}
		for _, e := range tc.Exprs {
			valued[e.Expr] = true
		}
	}
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		if !fires[a] {
			t.Errorf("alert %s: no unit test expects it to fire", a)
		}
		if !strings.Contains(string(doc), "`"+a+"`") {
			t.Errorf("alert %s: not explained in docs/operations.md", a)
		}
	}
	for _, r := range records {
		if !valued[r] {
			t.Errorf("recording rule %s: no unit test of its value", r)
		}
	}
}

// TestPrometheusAlertNoWorkerReady: a real Prometheus scrapes a running
// lancelot with the shipped rules (LancelotNoWorkerReady's `for` cut to
// 2 s), and the alert fires once every worker is stopped, each replacement
// too (SIGSTOP), and not before.
func TestPrometheusAlertNoWorkerReady(t *testing.T) {
	prometheus := requireTool(t, "prometheus")
	maddr := fmt.Sprintf("127.0.0.1:%d", lancelottest.FreePort(t))
	s := startServer(t, "--workers", "2", "--metrics", maddr, "--worker-timeout", "1s")
	paddr := startPrometheus(t, prometheus, maddr, "2s")

	waitPromQuery(t, paddr, "lancelot_workers", "2")
	waitPromQuery(t, paddr, "count(lancelot_connections_max>0)", "1")
	if firing := firingAlerts(t, paddr); slices.Contains(firing, "LancelotNoWorkerReady") {
		t.Fatalf("LancelotNoWorkerReady fires with 2 ready workers: %v", firing)
	}
	st := stopWorkers(t, s)
	defer st.release()
	lancelottest.WaitFor(t, 60*time.Second, "LancelotNoWorkerReady firing in Prometheus", func() bool {
		return slices.Contains(firingAlerts(t, paddr), "LancelotNoWorkerReady")
	})
	t.Logf("alert fired; %d worker processes stopped on the way", st.count())
}

// startPrometheus runs Prometheus on a free port, scraping the lancelot
// metrics port maddr every second with the shipped rules, and
// LancelotNoWorkerReady's `for` set to noWorkerFor. It is killed, by pid,
// when the test ends.
func startPrometheus(t *testing.T, prometheus, maddr, noWorkerFor string) string {
	t.Helper()
	dir := t.TempDir()
	rf := readRules(t)
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r["alert"] == "LancelotNoWorkerReady" {
				r["for"] = noWorkerFor
			}
		}
	}
	rules, err := yaml.Marshal(rf)
	if err != nil {
		t.Fatal(err)
	}
	// A scrape waits up to a second for a stopped worker's counters.
	config := fmt.Sprintf(`global:
  scrape_interval: 2s
  scrape_timeout: 2s
  evaluation_interval: 1s
rule_files: [rules.yaml]
scrape_configs:
  - job_name: lancelot
    static_configs:
      - targets: [%q]
`, maddr)
	for name, body := range map[string][]byte{"rules.yaml": rules, "prometheus.yml": []byte(config)} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	paddr := fmt.Sprintf("127.0.0.1:%d", lancelottest.FreePort(t))
	log, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(prometheus, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+paddr)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("prometheus log:\n%s", b)
		}
	})
	lancelottest.WaitFor(t, 30*time.Second, "prometheus ready", func() bool {
		code, _ := httpGet("http://" + paddr + "/-/ready")
		return code == http.StatusOK
	})
	return paddr
}

// httpGet fetches url without keeping the connection (no goroutine
// outlives the call).
func httpGet(url string) (int, []byte) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// promAPI fetches a Prometheus API path into data.
func promAPI(t *testing.T, paddr, path string, data any) bool {
	t.Helper()
	code, body := httpGet("http://" + paddr + path)
	if code != http.StatusOK {
		return false
	}
	var r struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	return json.Unmarshal(body, &r) == nil && r.Status == "success" && json.Unmarshal(r.Data, data) == nil
}

// waitPromQuery waits until Prometheus's instant query expr has one sample
// of value want.
func waitPromQuery(t *testing.T, paddr, expr, want string) {
	t.Helper()
	lancelottest.WaitFor(t, 30*time.Second, fmt.Sprintf("prometheus: %s = %s", expr, want), func() bool {
		var d struct {
			Result []struct {
				Value []any `json:"value"`
			} `json:"result"`
		}
		ok := promAPI(t, paddr, "/api/v1/query?query="+url.QueryEscape(expr), &d)
		return ok && len(d.Result) == 1 && len(d.Result[0].Value) == 2 && d.Result[0].Value[1] == want
	})
}

// firingAlerts are the names of the alerts firing in Prometheus now.
func firingAlerts(t *testing.T, paddr string) []string {
	t.Helper()
	var d struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	var out []string
	if promAPI(t, paddr, "/api/v1/alerts", &d) {
		for _, a := range d.Alerts {
			if a.State == "firing" {
				out = append(out, a.Labels["alertname"])
			}
		}
	}
	return out
}

// stopper keeps every worker of a supervisor stopped (SIGSTOP), the
// replacements it starts included, until released.
type stopper struct {
	done    chan struct{}
	exited  chan struct{}
	mu      sync.Mutex
	stopped []int
}

// stopWorkers stops the workers of s now and every new one as soon as it
// appears among the supervisor's children.
func stopWorkers(t *testing.T, s *server) *stopper {
	st := &stopper{done: make(chan struct{}), exited: make(chan struct{})}
	sup := s.cmd.Process.Pid
	go func() {
		defer close(st.exited)
		for {
			for _, pid := range proc.Children(sup) {
				st.stop(pid)
			}
			select {
			case <-st.done:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(st.release)
	return st
}

// stop stops pid once, if it is a lancelot worker.
func (st *stopper) stop(pid int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if slices.Contains(st.stopped, pid) || !isWorker(pid) {
		return
	}
	if syscall.Kill(pid, syscall.SIGSTOP) == nil {
		st.stopped = append(st.stopped, pid)
	}
}

func (st *stopper) count() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.stopped)
}

// release stops stopping and lets every stopped worker still ours go on.
func (st *stopper) release() {
	select {
	case <-st.done:
	default:
		close(st.done)
	}
	<-st.exited
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, pid := range st.stopped {
		if isWorker(pid) {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}
}

// isWorker reports whether pid runs `lancelot worker`. A child the
// supervisor has forked but not yet exec'd still has the supervisor's
// command line: stopping it would stop the supervisor too, which waits
// for the exec (vfork).
func isWorker(pid int) bool {
	args := proc.Cmdline(pid)
	return len(args) > 1 && args[0] == binPath && args[1] == "worker"
}
