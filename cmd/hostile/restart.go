package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sync"
	"syscall"
	"time"
)

// restartResult is what restart prints. Times are from the SIGKILL.
type restartResult struct {
	Supervisor int   `json:"supervisor"`
	Killed     int   `json:"killed_pid"`
	KillUnixMs int64 `json:"kill_unix_ms"`
	NewPid     int   `json:"new_pid,omitempty"`
	// NewPidMs: when a new worker process appeared; nil if none did in time.
	NewPidMs *float64 `json:"new_pid_ms"`
	// AnsweredMs: when the last of the probes started right after the
	// kill was answered (those that hashed to the killed worker's socket
	// wait for its successor); nil if any failed.
	AnsweredMs *float64         `json:"answered_ms"`
	Probes     int              `json:"probes"`
	ProbesOK   int              `json:"probes_ok"`
	Failures   map[string]int64 `json:"probe_failures"`
	ProbeMs    []float64        `json:"probe_done_ms"` // each probe's end (answer or failure)
}

// runRestart kills one worker and measures its replacement.
func runRestart(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("restart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pidFile := fs.String("pid-file", "", "file holding the supervisor's pid")
	server := fs.String("server", defaultServer, "server host:port the probes ask (127.0.0.0/8 only)")
	bound := fs.Duration("timeout", time.Minute, "give up waiting after this")
	probes := fs.Int("probes", 16, "fresh connections asked, started right after the kill")
	every := fs.Duration("probe-every", 0, "time between two probes' starts (0: all at once, so the last answer times the restart)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := loopbackAddr(*server); err != nil {
		return err
	}
	sup := currentPid(*pidFile, 0)
	if sup == 0 || *probes < 1 || *bound <= 0 {
		return errors.New("restart: need a readable --pid-file, --probes >= 1 and a positive --timeout")
	}
	res, err := killAndWatch(ctx, sup, *server, *bound, *probes, *every)
	if err != nil {
		return err
	}
	return writeJSON(stdout, res)
}

// killAndWatch SIGKILLs the supervisor's first worker, then watches for its
// successor while probes ask fresh questions.
func killAndWatch(ctx context.Context, sup int, server string, bound time.Duration, probes int, every time.Duration) (restartResult, error) {
	before := childPids(sup)
	if len(before) == 0 {
		return restartResult{}, fmt.Errorf("restart: supervisor %d has no workers", sup)
	}
	res := restartResult{Supervisor: sup, Killed: before[0], Probes: probes, Failures: map[string]int64{}}
	t0 := time.Now()
	if err := syscall.Kill(res.Killed, syscall.SIGKILL); err != nil {
		return res, fmt.Errorf("restart: kill worker %d: %w", res.Killed, err)
	}
	res.KillUnixMs = t0.UnixMilli()
	ctx, cancel := context.WithDeadline(ctx, t0.Add(bound))
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { res.NewPid, res.NewPidMs = watchNewChild(ctx, sup, before, t0) })
	done := probeAfter(server, t0, bound, probes, every)
	wg.Wait()
	res.tallyProbes(done)
	return res, nil
}

// watchNewChild polls sup's children until one not in before appears.
func watchNewChild(ctx context.Context, sup int, before []int, t0 time.Time) (int, *float64) {
	for {
		for _, p := range childPids(sup) {
			if !slices.Contains(before, p) {
				ms := float64(time.Since(t0).Microseconds()) / 1000
				return p, &ms
			}
		}
		if !sleepCtx(ctx, 10*time.Millisecond) {
			return 0, nil
		}
	}
}

// probeResult is one probe: when it ended (ms after the kill) and how.
type probeResult struct {
	ms  float64
	err error
}

// probeAfter starts n fresh questions every `every` from t0, each allowed
// until t0+bound, and returns how each ended.
func probeAfter(server string, t0 time.Time, bound time.Duration, n int, every time.Duration) []probeResult {
	out := make([]probeResult, n)
	cfg := goodConfig{Server: server, Question: defaultQuestion, Answer: nameAnswer}
	var wg sync.WaitGroup
	for i := range out {
		time.Sleep(time.Until(t0.Add(time.Duration(i) * every)))
		wg.Go(func() {
			start := time.Now()
			cfg := cfg
			cfg.Timeout = time.Until(t0.Add(bound))
			err := askOnce(cfg, start)
			out[i] = probeResult{ms: float64(time.Since(t0).Microseconds()) / 1000, err: err}
		})
	}
	wg.Wait()
	return out
}

// tallyProbes folds the probes into the result.
func (r *restartResult) tallyProbes(done []probeResult) {
	last := 0.0
	for _, p := range done {
		r.ProbeMs = append(r.ProbeMs, p.ms)
		if p.err != nil {
			r.Failures[kindOf(p.err)]++
			continue
		}
		r.ProbesOK++
		last = max(last, p.ms)
	}
	if r.ProbesOK == r.Probes {
		r.AnsweredMs = &last
	}
}
