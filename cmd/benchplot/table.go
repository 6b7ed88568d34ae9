package main

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/camelot/lancelot/cmd/internal/loadgen"
)

const (
	beginMarker = "<!-- results:begin -->"
	endMarker   = "<!-- results:end -->"
)

// markdownTable renders the figures, one column per server.
func markdownTable(r *results, rs *restartResults) string {
	servers := r.servers()
	var b strings.Builder
	row := func(label string, cell func(server string) string) {
		b.WriteString("| " + label + " |")
		for _, s := range servers {
			b.WriteString(" " + cell(s) + " |")
		}
		b.WriteString("\n")
	}
	b.WriteString("| figure | " + strings.Join(servers, " | ") + " |\n")
	b.WriteString("|---|" + strings.Repeat("---|", len(servers)) + "\n")
	loadRows(r, row)
	idleRows(r, row)
	if rs != nil {
		restartRows(rs, row)
	}
	fmt.Fprintf(&b, "\nRun %s, lancelot %s: %s per load, best of %d round(s), %d workers for lancelot and c-epoll; %d CPUs, Linux %s, %s.\n",
		r.Generated, r.Lancelot, r.Duration, r.Rounds, r.Workers, r.Host.CPUs, r.Host.Kernel, r.Host.Go)
	if rs != nil {
		fmt.Fprintf(&b, "Restarts measured %s, lancelot %s, %d worker(s), `lancelot ask` start-up (%.1f ms) subtracted.\n",
			rs.Generated, rs.Lancelot, rs.Workers, rs.BaselineMS)
	}
	if t := targetRows(r, rs); t != "" {
		b.WriteString("\n" + t)
	}
	return b.String()
}

type rowFunc func(label string, cell func(server string) string)

// loadRows are the throughput loads' figures, from each server's best round.
func loadRows(r *results, row rowFunc) {
	loads := r.loads()
	for _, load := range loads {
		row("exchanges/s, "+load+spreadNote(r), func(s string) string {
			return cell(r.best(s, load), func(x *loadRun) string {
				return thousands(x.Result.ExchangesPerS) + spread(r, s, load) + died(x)
			})
		})
	}
	for _, load := range loads {
		row("server CPU µs/exchange, "+load, func(s string) string {
			return cell(r.best(s, load), func(x *loadRun) string {
				us, ok := x.cpuPerExchange()
				return cond(ok, fmt.Sprintf("%.1f", us), "-")
			})
		})
	}
	for _, load := range loads {
		row("latency p50 / p99 / max µs, "+load, func(s string) string {
			return cell(r.best(s, load), func(x *loadRun) string {
				l := x.Result.Latency
				return fmt.Sprintf("%d / %d / %d", l.P50, l.P99, l.Max)
			})
		})
	}
	for _, load := range loads {
		row("errors, "+load, func(s string) string {
			return cell(r.best(s, load), func(x *loadRun) string { return errorCell(x.Result) })
		})
	}
	row("server RSS, peak during "+loads[0], func(s string) string {
		return cell(r.best(s, loads[0]), func(x *loadRun) string { return bytesCell(float64(x.RSSKiB) * 1024) })
	})
	row("other processes' CPU during those runs, s (noise)", func(s string) string {
		var worst float64
		for _, load := range loads {
			if x := r.best(s, load); x != nil {
				worst = max(worst, x.othersCPU())
			}
		}
		return fmt.Sprintf("≤ %.1f", worst)
	})
}

// spreadNote labels the rounds' range when there are several.
func spreadNote(r *results) string {
	return cond(r.Rounds > 1, " (best; range of rounds)", "")
}

// spread is " (lo–hi)", the range of a server's rounds under a load, when
// there are several rounds.
func spread(r *results, server, load string) string {
	var rates []float64
	for _, x := range r.Runs {
		if x.Server == server && x.Load == load && x.Result != nil {
			rates = append(rates, x.Result.ExchangesPerS)
		}
	}
	if len(rates) < 2 {
		return ""
	}
	return fmt.Sprintf(" (%s–%s)", thousands(slices.Min(rates)), thousands(slices.Max(rates)))
}

// idleRows are the idle-connection figures.
func idleRows(r *results, row rowFunc) {
	for _, n := range r.idleCounts() {
		row(fmt.Sprintf("idle connections held of %s (probe p99 µs)", commas(n)), func(s string) string {
			x := r.idleFor(s, n)
			if x == nil || x.Result == nil {
				return "-"
			}
			return fmt.Sprintf("%s (%d)%s", commas(int(x.Result.IdleHeld)), x.Result.Latency.P99, cond(x.Alive, "", " (died)"))
		})
		row(fmt.Sprintf("user-space RSS per idle connection (%s, %d procs)", commas(n), idleWorkers(r, n)), func(s string) string {
			x := r.idleFor(s, n)
			if x == nil || x.Result == nil || x.Result.IdleHeld == 0 {
				return "-"
			}
			return bytesCell(float64(x.RSSHeldKiB-x.RSSBeforeKiB) * 1024 / float64(x.Result.IdleHeld))
		})
	}
}

func idleWorkers(r *results, n int) int {
	for _, x := range r.Idle {
		if x.Connections == n {
			return x.Workers
		}
	}
	return 0
}

// restartRows are restart.sh's figures, in lancelot's column.
func restartRows(rs *restartResults, row rowFunc) {
	for _, set := range []struct {
		label string
		ms    []float64
	}{
		{fmt.Sprintf("worker restart ms, p50 / p90 / max of %d kills %.1fs apart", len(rs.Spaced), rs.SpacingS), rs.Spaced},
		{fmt.Sprintf("worker restart ms, p50 / p90 / max of %d kills in a row (backoff)", len(rs.Rapid)), rs.Rapid},
	} {
		if len(set.ms) == 0 {
			continue
		}
		row(set.label, func(s string) string {
			if s != "lancelot" {
				return "-"
			}
			return fmt.Sprintf("%.0f / %.0f / %.0f", quantile(set.ms, 0.5), quantile(set.ms, 0.9), slices.Max(set.ms))
		})
	}
}

// quantile is the nearest-rank quantile of ms.
func quantile(ms []float64, q float64) float64 {
	s := slices.Sorted(slices.Values(ms))
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// cell formats a run, or "-" when there is none or it produced nothing.
func cell(x *loadRun, f func(*loadRun) string) string {
	switch {
	case x == nil:
		return "-"
	case x.Result == nil:
		return "failed" + died(x)
	}
	return f(x)
}

func died(x *loadRun) string { return cond(x.Alive, "", " (died)") }

func cond(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

func errorCell(r *loadgen.Result) string {
	var parts []string
	for _, k := range loadgen.Kinds() {
		if n := r.Errors[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	return cond(len(parts) == 0, "0", strings.Join(parts, ", "))
}

func thousands(v float64) string {
	if v < 1000 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1fk", v/1000)
}

func bytesCell(b float64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}

func commas(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// replaceSection rewrites what lies between the markers in a markdown file.
func replaceSection(path, table string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	begin := bytes.Index(b, []byte(beginMarker))
	end := bytes.Index(b, []byte(endMarker))
	if begin < 0 || end < begin {
		return fmt.Errorf("%s: no %q ... %q section", path, beginMarker, endMarker)
	}
	var out bytes.Buffer
	out.Write(b[:begin+len(beginMarker)])
	out.WriteString("\n" + table)
	out.Write(b[end:])
	return os.WriteFile(path, out.Bytes(), 0o644)
}
