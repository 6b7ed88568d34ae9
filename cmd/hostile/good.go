package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/camelot/lancelot/cmd/internal/loadgen"
)

// goodConfig is the well-behaved client's settings.
type goodConfig struct {
	Server     string
	Interval   time.Duration // between two questions
	Timeout    time.Duration // per question, connect included
	Duration   time.Duration // bound on the whole run
	Count      int           // bound on questions asked (0: none)
	Persistent bool          // one connection, reopened only after a failure
	Question   string
	Answer     string
	Samples    bool // include every question in the output
}

// parseGood parses the good client's flags.
func parseGood(args []string, stderr io.Writer) (goodConfig, error) {
	fs := flag.NewFlagSet("good", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg goodConfig
	fs.StringVar(&cfg.Server, "server", defaultServer, "server host:port (127.0.0.0/8 only)")
	fs.DurationVar(&cfg.Interval, "interval", 20*time.Millisecond, "time between two questions")
	fs.DurationVar(&cfg.Timeout, "timeout", 2*time.Second, "per question, connect included")
	fs.DurationVar(&cfg.Duration, "duration", time.Minute, "stop after this (or at SIGTERM/SIGINT)")
	fs.IntVar(&cfg.Count, "count", 0, "stop after this many questions (0: no limit)")
	fs.BoolVar(&cfg.Persistent, "persistent", false, "ask on one kept connection instead of connect-ask-close")
	fs.StringVar(&cfg.Question, "question", defaultQuestion, "the question")
	fs.StringVar(&cfg.Answer, "answer", nameAnswer, "the expected answer, byte for byte")
	fs.BoolVar(&cfg.Samples, "samples", false, "include every question (start, latency, error) in the JSON")
	if err := fs.Parse(args); err != nil {
		return goodConfig{}, err
	}
	if fs.NArg() > 0 {
		return goodConfig{}, fmt.Errorf("good: unexpected argument %q", fs.Arg(0))
	}
	if _, err := loopbackAddr(cfg.Server); err != nil {
		return goodConfig{}, err
	}
	if cfg.Interval <= 0 || cfg.Timeout <= 0 || cfg.Duration <= 0 || cfg.Count < 0 {
		return goodConfig{}, errors.New("good: --interval, --timeout and --duration must be positive")
	}
	return cfg, nil
}

// goodResult is what the good client prints.
type goodResult struct {
	Mode        string           `json:"mode"` // persistent or new-conn
	Server      string           `json:"server"`
	IntervalMs  float64          `json:"interval_ms"`
	TimeoutMs   float64          `json:"timeout_ms"`
	StartUnixMs int64            `json:"start_unix_ms"`
	EndUnixMs   int64            `json:"end_unix_ms"`
	Count       int64            `json:"count"`
	OK          int64            `json:"ok"`
	Failures    map[string]int64 `json:"failures"`
	Latency     *quantiles       `json:"latency_ms"` // answered questions only
	Timeline    []bucket         `json:"timeline"`
	Samples     []sample         `json:"samples,omitempty"`
}

// sample is one question: when it started (unix ms), how long it took,
// and its error kind if it failed.
type sample struct {
	T   int64  `json:"t"`
	Us  int64  `json:"us"`
	Err string `json:"err,omitempty"`
}

// goodRecorder collects the good client's questions. Safe for concurrent use.
type goodRecorder struct {
	mu      sync.Mutex
	hist    *loadgen.Histogram
	samples []sample
}

func (r *goodRecorder) record(start time.Time, d time.Duration, err error) {
	s := sample{T: start.UnixMilli(), Us: d.Microseconds()}
	if err != nil {
		s.Err = kindOf(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, s)
	if err == nil {
		r.hist.Record(d)
	}
}

// result summarizes what was recorded.
func (r *goodRecorder) result(cfg goodConfig, start time.Time) goodResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := goodResult{Mode: "new-conn", Server: cfg.Server, StartUnixMs: start.UnixMilli(), EndUnixMs: time.Now().UnixMilli(),
		IntervalMs: float64(cfg.Interval) / 1e6, TimeoutMs: float64(cfg.Timeout) / 1e6,
		Count: int64(len(r.samples)), Failures: map[string]int64{}, Latency: summarize(r.hist),
		Timeline: timeline(r.samples)}
	if cfg.Persistent {
		res.Mode = "persistent"
	}
	for _, s := range r.samples {
		if s.Err != "" {
			res.Failures[s.Err]++
		}
	}
	res.OK = res.Count - sumCounts(res.Failures)
	if cfg.Samples {
		res.Samples = append([]sample(nil), r.samples...)
	}
	return res
}

// runGood is the good client.
func runGood(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseGood(args, stderr)
	if err != nil {
		return err
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	r := &goodRecorder{hist: newHist()}
	if cfg.Persistent {
		askPersistent(ctx, cfg, r)
	} else {
		askNewConns(ctx, cfg, r)
	}
	return writeJSON(stdout, r.result(cfg, start))
}

// askNewConns asks every interval on a new connection, whether or not the
// earlier questions have been answered (an open loop: a stalled server
// shows as failures, not as fewer questions).
func askNewConns(ctx context.Context, cfg goodConfig, r *goodRecorder) {
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	for n := 0; cfg.Count == 0 || n < cfg.Count; n++ {
		// Not tied to ctx: a question in flight at the end runs to its
		// own timeout, so that stopping does not fail it.
		wg.Go(func() {
			start := time.Now()
			err := askOnce(cfg, start)
			r.record(start, time.Since(start), err)
		})
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// askOnce connects, asks, checks the answer and closes, all within
// cfg.Timeout of start.
func askOnce(cfg goodConfig, start time.Time) error {
	deadline := start.Add(cfg.Timeout)
	c, err := net.DialTimeout("tcp4", cfg.Server, time.Until(deadline))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(deadline)
	return ask(c, bufio.NewReader(c), cfg)
}

// askPersistent asks every interval on one connection, waiting for each
// answer; after a failure the connection is replaced.
func askPersistent(ctx context.Context, cfg goodConfig, r *goodRecorder) {
	var c net.Conn
	var br *bufio.Reader
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	for n := 0; cfg.Count == 0 || n < cfg.Count; n++ {
		start := time.Now()
		var err error
		if c == nil {
			c, err = net.DialTimeout("tcp4", cfg.Server, cfg.Timeout)
			br = bufio.NewReader(c)
		}
		if err == nil {
			c.SetDeadline(start.Add(cfg.Timeout))
			err = ask(c, br, cfg)
		}
		r.record(start, time.Since(start), err)
		if err != nil && c != nil {
			c.Close()
			c = nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// ask writes the question and reads the answer, comparing it byte for
// byte as it comes.
func ask(c net.Conn, br *bufio.Reader, cfg goodConfig) error {
	if _, err := io.WriteString(c, cfg.Question); err != nil {
		return err
	}
	for i := 0; i < len(cfg.Answer); i++ {
		b, err := br.ReadByte()
		if err != nil {
			return err
		}
		if b != cfg.Answer[i] {
			return fmt.Errorf("byte %d is %q, want %q: %w", i, b, cfg.Answer[i], loadgen.ErrWrongAnswer)
		}
	}
	return nil
}

// sumCounts adds up a map of counts.
func sumCounts(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}
