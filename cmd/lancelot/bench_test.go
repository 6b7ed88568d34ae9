package main

// The CI smoke of `lancelot bench`: a second of each mode against the real
// server, asserting zero errors and a positive rate. Never a speed
// threshold: benchmarks live in docs/bench/compare.sh.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/camelot/lancelot/cmd/internal/loadgen"
	"github.com/camelot/lancelot/shared/lancelottest"
)

// benchRun is one finished `lancelot bench` process.
type benchRun struct {
	stdout, stderr string
	err            error
}

// runBench runs `lancelot bench args...`, bounded to 60 s.
func runBench(t *testing.T, args ...string) benchRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, binPath, append([]string{"bench"}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return benchRun{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// benchJSON checks that stdout is exactly one JSON object with the
// keys docs/reference.md documents, and decodes it.
func benchJSON(t *testing.T, out string) loadgen.Result {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var raw map[string]json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		t.Fatalf("stdout %q: %v", out, err)
	}
	if rest, _ := readAllString(dec); strings.TrimSpace(rest) != "" {
		t.Errorf("stdout has more than one JSON object: %q", out)
	}
	for _, key := range []string{"exchanges", "exchanges_per_s", "connections_per_s", "latency_us", "errors"} {
		if _, ok := raw[key]; !ok {
			t.Errorf("JSON %s lacks %q", out, key)
		}
	}
	var lat map[string]json.RawMessage
	json.Unmarshal(raw["latency_us"], &lat)
	for _, key := range []string{"p50", "p90", "p99", "p999", "max"} {
		if _, ok := lat[key]; !ok {
			t.Errorf("latency_us %s lacks %q", raw["latency_us"], key)
		}
	}
	var errs map[string]json.RawMessage
	json.Unmarshal(raw["errors"], &errs)
	for _, k := range loadgen.Kinds() {
		if _, ok := errs[string(k)]; !ok {
			t.Errorf("errors %s lacks %q", raw["errors"], k)
		}
	}
	var res loadgen.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	return res
}

// TestBenchErrorSummary: the summary lists the kinds that occurred, in
// loadgen.Kinds' order, reset_queued apart from reset.
func TestBenchErrorSummary(t *testing.T) {
	for _, tc := range []struct {
		errors map[loadgen.ErrorKind]int64
		want   string
	}{
		{map[loadgen.ErrorKind]int64{}, "none"},
		{map[loadgen.ErrorKind]int64{loadgen.Reset: 0, loadgen.EOF: 2}, "eof 2"},
		{map[loadgen.ErrorKind]int64{loadgen.ResetQueued: 3, loadgen.Refused: 1, loadgen.Reset: 1}, "refused 1, reset 1, reset_queued 3"},
	} {
		if got := errorSummary(loadgen.Result{Errors: tc.errors}); got != tc.want {
			t.Errorf("errorSummary(%v) = %q, want %q", tc.errors, got, tc.want)
		}
	}
}

func readAllString(dec *json.Decoder) (string, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(dec.Buffered())
	return b.String(), err
}

func TestBenchSmoke(t *testing.T) {
	s := startServer(t, "--workers", "2")
	for _, tc := range []struct {
		mode string
		args []string
	}{
		{"persistent", nil},
		{"pipelined", []string{"--pipeline", "3"}},
		{"book", []string{"--mode", "book"}},
		{"idle", []string{"--mode", "idle", "--probes", "2"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			args := append([]string{"--server", s.addr, "-c", "4", "--duration", "1s", "--json"}, tc.args...)
			r := runBench(t, args...)
			if r.err != nil {
				t.Fatalf("bench %v: %v\nstderr: %s", args, r.err, r.stderr)
			}
			res := benchJSON(t, r.stdout)
			if res.ErrorCount() != 0 || res.Exchanges <= 0 || res.ExchangesPerS <= 0 || res.ConnectionsPerS <= 0 {
				t.Errorf("bench %v = %s; want exchanges, positive rates and no errors", args, r.stdout)
			}
			if tc.mode == "idle" && res.IdleHeld != 4 {
				t.Errorf("bench %v held %d idle connections, want 4", args, res.IdleHeld)
			}
		})
	}
}

func TestBenchSummary(t *testing.T) {
	s := startServer(t, "--workers", "2")
	r := runBench(t, "--server", s.addr, "-c", "2", "--duration", "300ms")
	if r.err != nil {
		t.Fatalf("bench: %v\nstderr: %s", r.err, r.stderr)
	}
	for _, want := range []string{"exchanges", "connections/s", "latency µs", "p50", "p99.9", "max", "errors        none"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestBenchFails(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--server", fmt.Sprintf("127.0.0.1:%d", lancelottest.FreePort(t))}, "unreachable"},
		{[]string{"--server", "10.1.2.3:1060"}, "loopback"},
		{[]string{"--server", "example.com:1060"}, "loopback"},
		{[]string{"--mode", "sideways"}, "mode"},
		{[]string{"-c", "0"}, "at least 1"},
	} {
		began := time.Now()
		r := runBench(t, append(tc.args, "--duration", "30s")...)
		if r.err == nil || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("bench %v: %v, stderr %q; want a one-line error naming %q", tc.args, r.err, r.stderr, tc.want)
		}
		if d := time.Since(began); d > 10*time.Second {
			t.Errorf("bench %v took %v to fail; want at once", tc.args, d)
		}
	}
}

// TestBenchMessages: a server that is not there is named in one line that
// names no internal package; on a terminal (script(1) gives bench one),
// the progress bar ends at 100%.
func TestBenchMessages(t *testing.T) {
	t.Parallel()
	closed := fmt.Sprintf("127.0.0.1:%d", lancelottest.FreePort(t))
	r := runCLI(t, 30*time.Second, "bench", "--server", closed, "--duration", "1s")
	checkRefused(t, []string{"bench", "--server", closed}, r, 1, "bench: server unreachable ("+closed+")")
	if strings.Contains(r.stderr, "loadgen") {
		t.Errorf("bench error %q names an internal package", r.stderr)
	}

	script := requireTool(t, "script")
	s := startServer(t, "--workers", "1")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, "-qefc", binPath+" bench --server "+s.addr+" --duration 1s -c 2", "/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench under script: %v\n%s", err, out)
	}
	// The bar redraws in place (\r): its last drawing is the last text
	// before the summary.
	text := string(out)
	i := strings.Index(text, "persistent load on")
	if i < 0 {
		t.Fatalf("bench under script printed no summary:\n%q", text)
	}
	last := ""
	for _, draw := range strings.Split(text[:i], "\r") {
		if strings.TrimSpace(draw) != "" {
			last = draw
		}
	}
	if !strings.Contains(last, "100%") {
		t.Errorf("the progress bar's last drawing is %q, want it at 100%%", last)
	}
}
