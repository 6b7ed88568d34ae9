package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/camelot/lancelot/cmd/internal/loadgen"
)

// results is docs/bench-results.json as compare.sh writes it.
type results struct {
	Generated string `json:"generated"`
	Lancelot  string `json:"lancelot"` // the commit the server was built from
	Host      struct {
		CPUs   int    `json:"cpus"`
		Kernel string `json:"kernel"`
		Go     string `json:"go"`
	} `json:"host"`
	Duration string    `json:"duration"`
	Rounds   int       `json:"rounds"`
	Workers  int       `json:"workers"`
	Runs     []loadRun `json:"runs"`
	Idle     []idleRun `json:"idle"`
}

// loadRun is one load against one freshly started server.
type loadRun struct {
	Server      string          `json:"server"`
	Load        string          `json:"load"`
	Round       int             `json:"round"`
	Alive       bool            `json:"alive"`
	ServerCPU   float64         `json:"server_cpu_s"`
	BenchCPU    float64         `json:"bench_cpu_s"`
	MachineBusy float64         `json:"machine_busy_s"`
	RSSKiB      int64           `json:"rss_kib"`
	Error       string          `json:"error"`
	Result      *loadgen.Result `json:"result"`
}

// idleRun is one server holding idle connections.
type idleRun struct {
	Server       string          `json:"server"`
	Connections  int             `json:"connections"`
	Workers      int             `json:"workers"`
	Alive        bool            `json:"alive"`
	RSSBeforeKiB int64           `json:"rss_before_kib"`
	RSSHeldKiB   int64           `json:"rss_held_kib"`
	Error        string          `json:"error"`
	Result       *loadgen.Result `json:"result"`
}

// restartResults is restart.sh's output.
type restartResults struct {
	Lancelot   string    `json:"lancelot"`
	Workers    int       `json:"workers"`
	BaselineMS float64   `json:"baseline_ms"`
	SpacingS   float64   `json:"spacing_s"`
	Spaced     []float64 `json:"spaced_ms"`
	Rapid      []float64 `json:"rapid_ms"`
	Generated  string    `json:"generated"`
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func readResults(path string) (*results, error) {
	var r results
	if err := readJSON(path, &r); err != nil {
		return nil, err
	}
	if len(r.Runs) == 0 {
		return nil, fmt.Errorf("%s: no runs", path)
	}
	return &r, nil
}

func readRestart(path string) (*restartResults, error) {
	var r restartResults
	return &r, readJSON(path, &r)
}

// servers lists the servers in the order they ran.
func (r *results) servers() []string {
	return firstSeen(len(r.Runs), func(i int) string { return r.Runs[i].Server })
}

// loads lists the loads in the order they ran.
func (r *results) loads() []string {
	return firstSeen(len(r.Runs), func(i int) string { return r.Runs[i].Load })
}

func firstSeen(n int, key func(int) string) []string {
	seen := map[string]bool{}
	var out []string
	for i := range n {
		if k := key(i); !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// best returns a server's round with the highest rate under a load, or
// nil. The best, not the mean: other work on the machine only ever slows
// a round down.
func (r *results) best(server, load string) *loadRun {
	var b *loadRun
	for i := range r.Runs {
		x := &r.Runs[i]
		if x.Server != server || x.Load != load {
			continue
		}
		if b == nil || b.Result == nil || x.Result != nil && x.Result.ExchangesPerS > b.Result.ExchangesPerS {
			b = x
		}
	}
	return b
}

// cpuPerExchange is the server's CPU µs per exchange in a run.
func (x *loadRun) cpuPerExchange() (float64, bool) {
	if x.Result == nil || x.Result.Exchanges == 0 {
		return 0, false
	}
	return x.ServerCPU * 1e6 / float64(x.Result.Exchanges), true
}

// othersCPU is what the rest of the machine used during a run: neither
// the server nor the load generator.
func (x *loadRun) othersCPU() float64 {
	return max(x.MachineBusy-x.ServerCPU-x.BenchCPU, 0)
}

// idleFor returns a server's idle run with the given connection count.
func (r *results) idleFor(server string, conns int) *idleRun {
	for i := range r.Idle {
		if r.Idle[i].Server == server && r.Idle[i].Connections == conns {
			return &r.Idle[i]
		}
	}
	return nil
}

// idleCounts lists the idle connection counts measured, in order.
func (r *results) idleCounts() []int {
	var out []int
	seen := map[int]bool{}
	for _, x := range r.Idle {
		if !seen[x.Connections] {
			seen[x.Connections] = true
			out = append(out, x.Connections)
		}
	}
	return out
}
