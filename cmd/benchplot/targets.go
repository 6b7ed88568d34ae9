package main

import (
	"fmt"
	"slices"
	"strings"
)

// Lancelot's performance targets (stated in docs/benchmarks.md), checked
// against one run.
const (
	idleTarget      = 100000
	idleP99TargetUS = 2000
	idleRSSTarget   = 512 // bytes per connection
	restartTargetMS = 50
)

// targetRows renders lancelot against the targets, or "" when the run has
// no lancelot.
func targetRows(r *results, rs *restartResults) string {
	if !slices.Contains(r.servers(), "lancelot") {
		return ""
	}
	var b strings.Builder
	b.WriteString("| target | lancelot in this run | met |\n|---|---|---|\n")
	row := func(target, measured string, met, known bool) {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", target, measured, cond(known, cond(met, "yes", "**no**"), "-"))
	}
	for _, load := range []string{"persistent", "pipelined"} {
		lan, gs, ce := rateOf(r, "lancelot", load), rateOf(r, "go-single", load), rateOf(r, "c-epoll", load)
		row("exchanges/s, "+load+": ≥ 1.0× go-single and ≥ 0.95× c-epoll",
			fmt.Sprintf("%s go-single, %s c-epoll", ratio(lan, gs), ratio(lan, ce)),
			lan >= gs && lan >= 0.95*ce, lan > 0 && gs > 0 && ce > 0)
	}
	lan, better := rateOf(r, "lancelot", "book"), max(rateOf(r, "go-single", "book"), rateOf(r, "c-epoll", "book"))
	row("exchanges/s, book: ≥ 0.95× the better of go-single and c-epoll", ratio(lan, better)+" the better",
		lan >= 0.95*better, lan > 0 && better > 0)
	lc, cc := cpuOf(r, "lancelot", "persistent"), cpuOf(r, "c-epoll", "persistent")
	row("server CPU per exchange, persistent: ≤ 1.05× c-epoll",
		fmt.Sprintf("%.1f µs = %s c-epoll's %.1f µs", lc, ratio(lc, cc), cc), lc <= 1.05*cc, lc > 0 && cc > 0)
	idleTargetRows(r, row)
	if rs != nil && len(rs.Spaced) > 0 {
		p50 := quantile(rs.Spaced, 0.5)
		row(fmt.Sprintf("worker restart p50 ≤ %d ms over 20 kills", restartTargetMS),
			fmt.Sprintf("%.1f ms over %d kills", p50, len(rs.Spaced)), p50 <= restartTargetMS && len(rs.Spaced) >= 20, true)
	}
	return b.String()
}

func idleTargetRows(r *results, row func(string, string, bool, bool)) {
	x := r.idleFor("lancelot", idleTarget)
	if x == nil || x.Result == nil {
		row("100,000 idle connections held, every one answered once, probe p99 ≤ 2 ms", "not measured (IDLE_MAX=100000)", false, false)
	} else {
		held, p99 := x.Result.IdleHeld, x.Result.Latency.P99
		row("100,000 idle connections held, every one answered once, probe p99 ≤ 2 ms",
			fmt.Sprintf("%s held with %d workers, probe p99 %.2f ms", commas(int(held)), x.Workers, float64(p99)/1000),
			held == idleTarget && x.Result.ErrorCount() == 0 && p99 <= idleP99TargetUS, true)
	}
	var per float64
	for _, n := range r.idleCounts() {
		if y := r.idleFor("lancelot", n); y != nil && y.Result != nil && y.Result.IdleHeld > 0 {
			per = float64(y.RSSHeldKiB-y.RSSBeforeKiB) * 1024 / float64(y.Result.IdleHeld)
			break
		}
	}
	row(fmt.Sprintf("user-space RSS per idle connection ≤ %d B", idleRSSTarget), bytesCell(per), per <= idleRSSTarget, per > 0)
}

// rateOf is a server's best exchanges/s under the load whose label starts
// with prefix, or 0.
func rateOf(r *results, server, prefix string) float64 {
	if x := bestByPrefix(r, server, prefix); x != nil && x.Result != nil {
		return x.Result.ExchangesPerS
	}
	return 0
}

// cpuOf is the server CPU µs per exchange in that same round, or 0.
func cpuOf(r *results, server, prefix string) float64 {
	if x := bestByPrefix(r, server, prefix); x != nil {
		us, _ := x.cpuPerExchange()
		return us
	}
	return 0
}

func bestByPrefix(r *results, server, prefix string) *loadRun {
	for _, load := range r.loads() {
		if strings.HasPrefix(load, prefix) {
			return r.best(server, load)
		}
	}
	return nil
}

func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", a/b)
}
