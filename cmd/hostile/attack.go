package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/camelot/lancelot/cmd/internal/loadgen"
)

// childGrace is how long after the attack's end the children may take to
// report before they are killed.
const childGrace = 15 * time.Second

// attackResult is what an attack prints.
type attackResult struct {
	Attack      string   `json:"attack"`
	Args        []string `json:"args"`
	Server      string   `json:"server"`
	Count       int      `json:"count"`
	Processes   int      `json:"processes"`
	Sources     int      `json:"sources"`
	StartUnixMs int64    `json:"start_unix_ms"`
	// Ready: every slot tried its first connection before the end;
	// ReadyAfterS is when, OpenAtReady how many were then open.
	Ready       bool             `json:"ready"`
	ReadyAfterS float64          `json:"ready_after_s"`
	OpenAtReady int64            `json:"open_at_ready"`
	PeakOpen    int64            `json:"peak_open"` // sum of each process's peak
	EndUnixMs   int64            `json:"end_unix_ms"`
	Counts      map[string]int64 `json:"counts"`
	// CloseMs is the time from connect to the server's close, over the
	// connections the server closed.
	CloseMs *quantiles `json:"close_ms"`
	Errors  []string   `json:"errors,omitempty"`
}

// runAttack is the parent of an attack: it splits it over child
// processes, waits for them to set up and to finish, and prints the
// merged result.
func runAttack(ctx context.Context, mode string, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseAttack(mode, args, stderr)
	if err != nil {
		return err
	}
	spec, _ := lookupAttack(mode)
	start := time.Now()
	shares := plan(cfg, spec, start)
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	kids, err := loadgen.StartChildren[wireTally]([]string{exe, childMode}, shares, stderr)
	if err != nil {
		return err
	}
	defer kids.Close()
	res := attackResult{Attack: mode, Args: args, Server: cfg.Server, Count: cfg.Count,
		Processes: len(shares), Sources: shares[0].Sources, StartUnixMs: start.UnixMilli()}
	ctx, cancel := context.WithDeadline(ctx, start.Add(cfg.Duration))
	defer cancel()
	res.OpenAtReady, err = kids.Ready(ctx)
	if err != nil {
		err = fmt.Errorf("setup: %w", err)
	}
	res.Ready, res.ReadyAfterS = err == nil, time.Since(start).Seconds()
	if res.Ready {
		what := fmt.Sprintf("%d connections open after %.1fs", res.OpenAtReady, res.ReadyAfterS)
		if spec.churn {
			what = fmt.Sprintf("%d clients started", cfg.Concurrency)
		}
		fmt.Fprintf(stderr, "hostile %s: %s (%d processes, %d sources)\n", mode, what, len(shares), res.Sources)
		err = writeReady(cfg.ReadyFile, res.OpenAtReady)
	}
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	t := newTally()
	if err := kids.Results(ctx, childGrace, t.merge); err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	res.EndUnixMs = time.Now().UnixMilli()
	res.Counts, res.PeakOpen, res.CloseMs = t.counts, t.peak, summarize(t.closes)
	return writeJSON(stdout, res)
}

// writeReady writes the ready file, if asked for, so that a script can
// wait for the attack to be in place.
func writeReady(path string, open int64) error {
	if path == "" {
		return nil
	}
	data := fmt.Sprintf("{\"ready_unix_ms\":%d,\"open\":%d}\n", time.Now().UnixMilli(), open)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	return nil
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}
