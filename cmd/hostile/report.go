package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// events is what hostile.sh records about one attack run (events.json).
type events struct {
	Attack        string `json:"attack"`
	Label         string `json:"label"`
	StartMs       int64  `json:"attack_start_ms"`
	EndMs         int64  `json:"attack_end_ms"`
	LogBytes      int64  `json:"log_bytes"`       // stderr written, whole run
	LogBytesStart int64  `json:"log_bytes_start"` // ... when the attack started
	LogBytesEnd   int64  `json:"log_bytes_end"`   // ... when it ended
	ServerAlive   bool   `json:"server_alive"`    // still running at the end
	LogNote       string `json:"log_note,omitempty"`
}

// window is the good client's questions started in one span of time.
type window struct {
	Count    int64            `json:"count"`
	OK       int64            `json:"ok"`
	Failures map[string]int64 `json:"failures"`
	Latency  *quantiles       `json:"latency_ms"`
}

// clientReport is one good client's view of an attack.
type clientReport struct {
	Mode     string   `json:"mode"`
	Before   window   `json:"before"` // from the client's start to the attack's
	During   window   `json:"during"`
	After    window   `json:"after"`
	Recovery recovery `json:"recovery"`
}

// runRow is one attack's figures.
type runRow struct {
	Attack   string          `json:"attack"`
	Label    string          `json:"label"`
	Events   events          `json:"events"`
	Result   *attackResult   `json:"result"`
	Clients  []clientReport  `json:"good"`
	Server   *observeSummary `json:"server"`
	Restarts []restartResult `json:"worker_restarts,omitempty"`
	Problems []string        `json:"problems,omitempty"`
}

// observeSummary is observe's result without its samples.
type observeSummary struct {
	MaxRSSKiB           int64 `json:"max_rss_kib"`
	MaxSupervisorRSSKiB int64 `json:"max_supervisor_rss_kib"`
	EndRSSKiB           int64 `json:"end_rss_kib"`
	MaxFDs              int   `json:"max_fds"`
	MaxSupervisorFDs    int   `json:"max_supervisor_fds"`
	MaxProcs            int   `json:"max_procs"`
	MaxTCPMemPages      int64 `json:"max_tcp_mem_pages"` // whole machine
}

// report is the whole output of `hostile report`.
type report struct {
	Meta json.RawMessage `json:"meta,omitempty"`
	Runs []runRow        `json:"runs"`
}

// runReport reads hostile.sh's per-attack directories and writes the
// JSON and the markdown table.
func runReport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	meta := fs.String("meta", "", "JSON file embedded as \"meta\" (host, revision, scale)")
	out := fs.String("json", "", "write the JSON here (default: stdout)")
	md := fs.String("md", "", "write the markdown table here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var rep report
	if *meta != "" {
		data, err := os.ReadFile(*meta)
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		rep.Meta = json.RawMessage(data)
	}
	for _, dir := range fs.Args() {
		rep.Runs = append(rep.Runs, loadRun(dir))
	}
	if err := writeTo(*out, stdout, func(w io.Writer) error { return writeJSON(w, rep) }); err != nil {
		return err
	}
	if *md == "" {
		return nil
	}
	return writeTo(*md, nil, func(w io.Writer) error { return writeTable(w, rep) })
}

// writeTo writes to the named file, or to def when the name is empty.
func writeTo(path string, def io.Writer, write func(io.Writer) error) error {
	if path == "" {
		return write(def)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return errors.Join(write(f), f.Close())
}

// loadRun reads one attack's directory; what is missing or unreadable is
// listed in Problems rather than failing the whole report.
func loadRun(dir string) runRow {
	var row runRow
	note := func(err error) {
		if err != nil {
			row.Problems = append(row.Problems, err.Error())
		}
	}
	note(readJSON(filepath.Join(dir, "events.json"), &row.Events))
	row.Attack, row.Label = row.Events.Attack, row.Events.Label
	var res attackResult
	if err := readJSON(filepath.Join(dir, "attack.json"), &res); err == nil {
		row.Result = &res
		row.Problems = append(row.Problems, res.Errors...)
	} else {
		note(err)
	}
	for _, name := range []string{"good.json", "good-persistent.json"} {
		var g goodResult
		if err := readJSON(filepath.Join(dir, name), &g); err != nil {
			note(err)
			continue
		}
		row.Clients = append(row.Clients, clientOf(g, row.Events.StartMs, row.Events.EndMs))
	}
	var obs observeSummary
	if err := readJSON(filepath.Join(dir, "observe.json"), &obs); err == nil {
		row.Server = &obs
	} else {
		note(err)
	}
	kills, _ := filepath.Glob(filepath.Join(dir, "restart-*.json"))
	slices.Sort(kills)
	for _, f := range kills {
		var rs restartResult
		if err := readJSON(f, &rs); err != nil {
			note(err)
			continue
		}
		row.Restarts = append(row.Restarts, rs)
	}
	return row
}

// clientOf reads a good client's result against the attack's span.
func clientOf(g goodResult, startMs, endMs int64) clientReport {
	return clientReport{
		Mode:     g.Mode,
		Before:   windowOf(g.Samples, 0, startMs),
		During:   windowOf(g.Samples, startMs, endMs),
		After:    windowOf(g.Samples, endMs, 1<<62),
		Recovery: recoveryOf(g.Timeline, startMs, endMs),
	}
}

// windowOf summarizes the samples that started in [from, to) (unix ms).
func windowOf(samples []sample, from, to int64) window {
	w := window{Failures: map[string]int64{}}
	h := newHist()
	for _, s := range samples {
		if s.T < from || s.T >= to {
			continue
		}
		w.Count++
		if s.Err != "" {
			w.Failures[s.Err]++
			continue
		}
		w.OK++
		h.Record(time.Duration(s.Us) * time.Microsecond)
	}
	w.Latency = summarize(h)
	return w
}

// readJSON decodes a JSON file into v.
func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// sortedKeys returns m's keys in order, for stable output.
func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
