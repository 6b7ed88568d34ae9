package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A run as compare.sh writes it: two servers, two loads, one idle figure.
const sampleResults = `{"generated":"2026-01-01T00:00:00Z","lancelot":"abc1234","host":{"cpus":2,"kernel":"6.1","go":"go1.26"},
"duration":"5s","rounds":2,"workers":2,
"runs":[
{"server":"c-epoll","load":"persistent c=100","round":1,"alive":true,"server_cpu_s":0.6,"bench_cpu_s":1,"machine_busy_s":2,"rss_kib":3000,"error":"",
 "result":{"exchanges":100000,"exchanges_per_s":100000,"connections_per_s":100,"latency_us":{"p50":400,"p90":800,"p99":2000,"p999":5000,"max":9000},"errors":{"reset":0}}},
{"server":"c-epoll","load":"persistent c=100","round":2,"alive":true,"server_cpu_s":0.5,"bench_cpu_s":1,"machine_busy_s":2,"rss_kib":3000,"error":"",
 "result":{"exchanges":50000,"exchanges_per_s":50000,"connections_per_s":100,"latency_us":{"p50":400,"p90":800,"p99":2000,"p999":5000,"max":9000},"errors":{}}},
{"server":"lancelot","load":"persistent c=100","round":1,"alive":true,"server_cpu_s":0.7,"bench_cpu_s":1,"machine_busy_s":2.5,"rss_kib":40000,"error":"",
 "result":{"exchanges":80000,"exchanges_per_s":80000,"connections_per_s":100,"latency_us":{"p50":500,"p90":900,"p99":3000,"p999":6000,"max":9900},"errors":{"timeout":2}}},
{"server":"lancelot","load":"book c=50","round":1,"alive":false,"server_cpu_s":0,"bench_cpu_s":0,"machine_busy_s":0,"rss_kib":0,"error":"loadgen: server unreachable","result":null}
],
"idle":[{"server":"lancelot","connections":10000,"workers":2,"alive":true,"rss_before_kib":1000,"rss_held_kib":11000,"error":"",
 "result":{"exchanges":10000,"exchanges_per_s":1,"connections_per_s":1,"latency_us":{"p50":1,"p90":1,"p99":300,"p999":1,"max":1},"errors":{},"idle_held":10000}}]}`

func TestBenchplotWritesChartAndTable(t *testing.T) {
	dir := t.TempDir()
	in, md, png := filepath.Join(dir, "r.json"), filepath.Join(dir, "b.md"), filepath.Join(dir, "c.png")
	restart := filepath.Join(dir, "restart.json")
	write(t, in, sampleResults)
	write(t, md, "# title\n<!-- results:begin -->\nold table\n<!-- results:end -->\nafter\n")
	write(t, restart, `{"lancelot":"abc1234","workers":1,"spacing_s":10.5,"baseline_ms":4,"spaced_ms":[3,2,5,4],"rapid_ms":[50,100]}`)
	if err := run([]string{"-in", in, "-png", png, "-md", md, "-restart", restart}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(png); err != nil || st.Size() == 0 {
		t.Errorf("chart: %v", err)
	}
	b, _ := os.ReadFile(md)
	got := string(b)
	for _, want := range []string{
		"| figure | c-epoll | lancelot |",
		"| exchanges/s, persistent c=100 (best; range of rounds) | 100.0k (50.0k–100.0k) | 80.0k |", // c-epoll's best round
		"| server CPU µs/exchange, persistent c=100 | 6.0 | 8.8 |",
		"| errors, persistent c=100 | 0 | timeout 2 |",
		"| exchanges/s, book c=50 (best; range of rounds) | - | failed (died) |",
		"| user-space RSS per idle connection (10,000, 2 procs) | - | 1.0 KiB |",
		"| worker restart ms, p50 / p90 / max of 4 kills 10.5s apart | - | 3 / 5 / 5 |",
		"| target | lancelot in this run | met |",
		"server CPU per exchange, persistent: ≤ 1.05× c-epoll | 8.8 µs = 1.46× c-epoll's 6.0 µs | **no** |",
		"# title\n<!-- results:begin -->\n", "<!-- results:end -->\nafter\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("markdown lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "old table") {
		t.Error("old table kept")
	}
}

func TestBenchplotNeedsMarkers(t *testing.T) {
	dir := t.TempDir()
	in, md := filepath.Join(dir, "r.json"), filepath.Join(dir, "b.md")
	write(t, in, sampleResults)
	write(t, md, "no markers\n")
	if err := run([]string{"-in", in, "-png", filepath.Join(dir, "c.png"), "-md", md}); err == nil {
		t.Error("run succeeded on a file without markers")
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
