package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/camelot/lancelot/cmd/internal/loadgen"
)

// benchCommand is the load generator (docs/reference.md, "bench"); the load itself
// is cmd/internal/loadgen's, this is its command line and its report.
func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "load-test a Launcelot server on this machine: rates, latency percentiles, errors by kind",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "server", Value: loadgen.DefaultServer, Usage: "server `ADDR` (127.0.0.0/8 or ::1 only)"},
			&cli.IntFlag{Name: "connections", Aliases: []string{"c"}, Value: loadgen.DefaultConnections,
				Usage: "`N` client connections (book: concurrent clients; idle: connections held open)"},
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "measure for `DURATION`"},
			&cli.StringFlag{Name: "mode", Value: string(loadgen.Persistent), Usage: "load `MODE`: persistent, book or idle"},
			&cli.IntFlag{Name: "pipeline", Value: 1, Usage: "`N` questions in flight per connection (persistent)"},
			&cli.IntFlag{Name: "probes", Value: loadgen.DefaultProbes, Usage: "`N` connections measuring latency (idle)"},
			&cli.DurationFlag{Name: "timeout", Value: loadgen.DefaultTimeout, Usage: "wait at most `DURATION` for a connection or an answer"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object on stdout instead of the summary"},
			// The parent bench starts itself with --child when one process's
			// open-files limit cannot hold the load.
			&cli.BoolFlag{Name: "child", Hidden: true},
		},
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			if c.Bool("child") {
				return benchChild(c.Context)
			}
			cfg, err := benchConfig(c)
			if err != nil {
				return err
			}
			return bench(c.Context, cfg, c.Bool("json"))
		},
	}
}

// benchConfig turns the flags into a load.
func benchConfig(c *cli.Context) (loadgen.Config, error) {
	cfg := loadgen.Config{
		Server: c.String("server"), Mode: loadgen.Mode(c.String("mode")),
		Connections: c.Int("connections"), Pipeline: c.Int("pipeline"), Probes: c.Int("probes"),
		Duration: c.Duration("duration"), Timeout: c.Duration("timeout"),
	}
	switch {
	case cfg.Mode != loadgen.Persistent && cfg.Mode != loadgen.Book && cfg.Mode != loadgen.Idle:
		return cfg, fmt.Errorf("bench: --mode %q: want persistent, book or idle", cfg.Mode)
	case cfg.Connections < 1 || cfg.Pipeline < 1 || cfg.Probes < 1:
		return cfg, errors.New("bench: -c, --pipeline and --probes must be at least 1")
	case cfg.Duration <= 0 || cfg.Timeout <= 0:
		return cfg, errors.New("bench: --duration and --timeout must be positive")
	}
	exe, err := os.Executable()
	if err != nil {
		return cfg, fmt.Errorf("bench: find own binary for child processes: %w", err)
	}
	cfg.ChildArgs = []string{exe, "bench", "--child"}
	return cfg, nil
}

// bench runs the load, shows progress on a terminal, and prints the
// result. Ctrl-C ends the run early and still reports.
func bench(ctx context.Context, cfg loadgen.Config, asJSON bool) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	l, err := loadgen.Start(ctx, cfg)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if term.IsTerminal(int(os.Stderr.Fd())) {
		showProgress(l, cfg.Duration)
	}
	res, runErr := l.Wait()
	if asJSON {
		err = json.NewEncoder(os.Stdout).Encode(res)
	} else {
		err = writeSummary(os.Stdout, cfg, res)
	}
	if runErr != nil {
		return fmt.Errorf("bench: %w", runErr)
	}
	return err
}

// benchChild runs one share of a parent's load. Ctrl-C reaches the whole
// process group; the child ignores it and stops when the parent closes its
// stdin, so that the parent still gets the child's counts.
func benchChild(ctx context.Context) error {
	signal.Ignore(os.Interrupt)
	return loadgen.ServeChild(ctx, os.Stdin, os.Stdout)
}

// showProgress draws a progress line on stderr until the load ends.
func showProgress(l *loadgen.Load, d time.Duration) {
	bar := progressbar.NewOptions64(d.Milliseconds(), progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetWidth(20), progressbar.OptionSetPredictTime(false), progressbar.OptionShowDescriptionAtLineEnd(),
		// The finished bar (100%) stays; the summary starts on a line of its own.
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(os.Stderr) }))
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last loadgen.Progress
	for {
		select {
		case <-l.Done():
			// The run is over: the bar says so, at 100%.
			bar.Set64(d.Milliseconds())
			bar.Finish()
			return
		case <-tick.C:
		}
		p := l.Progress()
		rate := float64(p.Exchanges-last.Exchanges) / (p.Elapsed - last.Elapsed).Seconds()
		bar.Describe(fmt.Sprintf("%d exchanges, %.0f/s, %d errors", p.Exchanges, rate, p.Errors))
		// Stop short of the end until the load has ended: a full bar
		// finishes itself.
		bar.Set64(min(p.Timed.Milliseconds(), d.Milliseconds()-1))
		last = p
	}
}

// writeSummary prints the human report.
func writeSummary(w io.Writer, cfg loadgen.Config, r loadgen.Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s load on %s: %d connections", cfg.Mode, cfg.Server, cfg.Connections)
	if cfg.Mode == loadgen.Persistent {
		fmt.Fprintf(&b, ", pipeline %d", cfg.Pipeline)
	}
	fmt.Fprintf(&b, ", %.1fs\n", r.Elapsed.Seconds())
	fmt.Fprintf(&b, "  exchanges     %d (%.0f/s)\n", r.Exchanges, r.ExchangesPerS)
	fmt.Fprintf(&b, "  connections/s %.1f\n", r.ConnectionsPerS)
	if cfg.Mode == loadgen.Idle {
		fmt.Fprintf(&b, "  idle held     %d of %d (opened in %.1fs)\n", r.IdleHeld, cfg.Connections, r.Setup.Seconds())
	}
	lat := r.Latency
	fmt.Fprintf(&b, "  latency µs    p50 %d  p90 %d  p99 %d  p99.9 %d  max %d\n", lat.P50, lat.P90, lat.P99, lat.P999, lat.Max)
	fmt.Fprintf(&b, "  errors        %s\n", errorSummary(r))
	_, err := io.WriteString(w, b.String())
	return err
}

// errorSummary lists the error kinds that occurred, in a fixed order.
func errorSummary(r loadgen.Result) string {
	var parts []string
	for _, k := range loadgen.Kinds() {
		if n := r.Errors[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
