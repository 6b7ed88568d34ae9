package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// tableHeader is the markdown table's head; one row per attack follows.
const tableHeader = `| attack | new-conn good: p50 / p99 ms during | new-conn good: failures during / after | persistent good: failures during / after | recovery after end (s) | outage (s) | max RSS MiB: tree (supervisor) | RSS at end MiB | max fds / process (supervisor) | machine TCP buffers MiB | log bytes: attack (total) | worker restarts: new pid / answered (s) | attack |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
`

// tableNotes follows the table: what the columns mean.
const tableNotes = `
Each attack ran against a fresh server (2 workers, metrics on, stderr to a
file) while two good clients asked every 20 ms with a 2 s timeout: one
connecting anew for each question (new-conn), one on a kept connection
(persistent). "During" is from the attack's start to its end, "after" the
rest of the run. Recovery: from the attack's end to the start of the run of
clean seconds (every question answered) that ends the run; outage: from the
first unclean second after the attack's start to that point; "not within N
s": still failing when the run ended. RSS and descriptors: the server's
process tree, sampled every 0.5 s; machine TCP buffers: /proc/net/sockstat,
the whole host. Worker restarts (metrics attacks): a worker is SIGKILLed
once the attack is in place (or a third into it, if its setup never
completes), up to 3 times, 6 s apart; seconds until a new worker
process exists / until the last of 16 fresh clients started at the kill is
answered (those hashed to the killed worker's socket wait for it), "never":
not within the 30 s bound, which ends the series. A persistent client on a
killed worker sees one "eof": that is the kill, not the attack.
`

// writeTable writes the markdown table of the runs.
func writeTable(w io.Writer, rep report) error {
	var b strings.Builder
	b.WriteString(metaLine(rep.Meta))
	b.WriteString(tableHeader)
	for _, r := range rep.Runs {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.Label, latencyCell(r.client("new-conn")), failureCell(r.client("new-conn")),
			failureCell(r.client("persistent")), r.recoveryCell(), r.outageCell(),
			r.rssCell(), r.endRSSCell(), r.fdsCell(), r.tcpMemCell(), r.logCell(), restartCell(r.Restarts),
			outcome(r.Result))
	}
	b.WriteString(tableNotes)
	_, err := io.WriteString(w, b.String())
	return err
}

// metaLine says what was measured where, from hostile.sh's meta.json; ""
// without one.
func metaLine(raw json.RawMessage) string {
	var m struct {
		Generated string  `json:"generated"`
		Lancelot  string  `json:"lancelot"`
		Scale     float64 `json:"scale"`
		Host      struct {
			CPUs      int    `json:"cpus"`
			Kernel    string `json:"kernel"`
			LoadStart string `json:"loadavg_start"`
			LoadEnd   string `json:"loadavg_end"`
		} `json:"host"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil {
		return ""
	}
	return fmt.Sprintf("lancelot %s, SCALE=%g, %s; %d CPUs, Linux %s, load average %s at the start, %s at the end.\n\n",
		m.Lancelot, m.Scale, m.Generated, m.Host.CPUs, m.Host.Kernel, m.Host.LoadStart, m.Host.LoadEnd)
}

// client is the run's good client of a mode, nil if it has none.
func (r runRow) client(mode string) *clientReport {
	for i := range r.Clients {
		if r.Clients[i].Mode == mode {
			return &r.Clients[i]
		}
	}
	return nil
}

func latencyCell(c *clientReport) string {
	if c == nil || c.During.Latency == nil {
		return "–"
	}
	return fmt.Sprintf("%.1f / %.1f", c.During.Latency.P50, c.During.Latency.P99)
}

func failureCell(c *clientReport) string {
	if c == nil {
		return "–"
	}
	return fmt.Sprintf("%s / %s", fraction(c.During), fraction(c.After))
}

// fraction is "failed of asked", with the kinds when any failed.
func fraction(w window) string {
	failed := w.Count - w.OK
	if failed == 0 {
		return fmt.Sprintf("0 of %d", w.Count)
	}
	var kinds []string
	for _, k := range sortedKeys(w.Failures) {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, w.Failures[k]))
	}
	return fmt.Sprintf("%d of %d (%s)", failed, w.Count, strings.Join(kinds, ", "))
}

// recoveryCell is the slowest client's recovery after the attack's end.
func (r runRow) recoveryCell() string {
	return r.worst(func(rc recovery) *float64 { return rc.AfterEndS })
}

// outageCell is the slowest client's outage.
func (r runRow) outageCell() string {
	return r.worst(func(rc recovery) *float64 { return rc.OutageS })
}

// worst formats the largest of a figure over the clients; a client that
// never recovered makes it "not within N s", N being what was observed.
func (r runRow) worst(get func(recovery) *float64) string {
	if len(r.Clients) == 0 {
		return "–"
	}
	worst := 0.0
	for _, c := range r.Clients {
		v := get(c.Recovery)
		if v == nil {
			return fmt.Sprintf("not within %.0f s", c.Recovery.ObservedAfterEndS)
		}
		worst = max(worst, *v)
	}
	return fmt.Sprintf("%.1f", worst)
}

func (r runRow) rssCell() string {
	if r.Server == nil {
		return "–"
	}
	return fmt.Sprintf("%.0f (%.0f)", mib(r.Server.MaxRSSKiB), mib(r.Server.MaxSupervisorRSSKiB))
}

func (r runRow) endRSSCell() string {
	if r.Server == nil {
		return "–"
	}
	return fmt.Sprintf("%.0f", mib(r.Server.EndRSSKiB))
}

func (r runRow) fdsCell() string {
	if r.Server == nil {
		return "–"
	}
	return fmt.Sprintf("%d (%d)", r.Server.MaxFDs, r.Server.MaxSupervisorFDs)
}

// tcpMemCell is the machine's peak TCP buffer memory (4 KiB pages).
func (r runRow) tcpMemCell() string {
	if r.Server == nil {
		return "–"
	}
	return fmt.Sprintf("%.0f", float64(r.Server.MaxTCPMemPages)*4/1024)
}

func (r runRow) logCell() string {
	e := r.Events
	s := fmt.Sprintf("%d (%d)", e.LogBytesEnd-e.LogBytesStart, e.LogBytes)
	if e.LogNote != "" {
		s += " " + e.LogNote
	}
	return s
}

// restartCell lists each kill's "new pid / answered" seconds.
func restartCell(kills []restartResult) string {
	if len(kills) == 0 {
		return "–"
	}
	cells := make([]string, len(kills))
	for i, rs := range kills {
		cells[i] = fmt.Sprintf("%s / %s", seconds(rs.NewPidMs), seconds(rs.AnsweredMs))
	}
	return strings.Join(cells, "; ")
}

// seconds formats milliseconds as seconds; nil is "never".
func seconds(ms *float64) string {
	if ms == nil {
		return "never"
	}
	return fmt.Sprintf("%.2f", *ms/1000)
}

// outcome says in a few words what the attack achieved.
func outcome(res *attackResult) string {
	if res == nil {
		return "no result"
	}
	c := res.Counts
	secs := float64(res.EndUnixMs-res.StartUnixMs) / 1000
	s := fmt.Sprintf("%d conns in %.0f s", c["opened"], secs)
	switch {
	case res.Attack == "badq":
	case res.Ready:
		s = fmt.Sprintf("%d open after %.1f s setup (peak %d), %d at end",
			res.OpenAtReady, res.ReadyAfterS, res.PeakOpen, c["held_at_end"])
	default:
		s = fmt.Sprintf("setup unfinished at the end (peak %d open), %d at end", res.PeakOpen, c["held_at_end"])
	}
	s += fmt.Sprintf("; server closed %d", c["closed_by_server"])
	if res.CloseMs != nil {
		s += fmt.Sprintf(" (after p50 %.1f s, max %.1f s)", res.CloseMs.P50/1000, res.CloseMs.Max/1000)
	}
	if n := c[notClosed]; n > 0 {
		s += fmt.Sprintf("; %d not closed in time", n)
	}
	if n := connectFailures(c); n > 0 {
		s += fmt.Sprintf("; %d connects failed", n)
	}
	return s
}

// connectFailures sums the connect_* counts.
func connectFailures(c map[string]int64) int64 {
	var n int64
	for k, v := range c {
		if strings.HasPrefix(k, "connect_") {
			n += v
		}
	}
	return n
}

func mib(kib int64) float64 { return float64(kib) / 1024 }
