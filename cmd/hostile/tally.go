package main

import (
	"errors"
	"maps"
	"sync"
	"time"

	"github.com/camelot/lancelot/cmd/internal/loadgen"
)

// newHist is a histogram up to 1 h: wide enough for a connection held
// through a whole attack.
func newHist() *loadgen.Histogram { return loadgen.NewHistogram(time.Hour) }

// tally is what one process of an attack counted. Safe for concurrent use.
type tally struct {
	mu     sync.Mutex
	counts map[string]int64
	open   int64 // connections open now
	peak   int64 // most connections open at once
	closes *loadgen.Histogram
}

func newTally() *tally {
	return &tally{counts: map[string]int64{}, closes: newHist()}
}

// add counts n events of a kind.
func (t *tally) add(kind string, n int64) {
	t.mu.Lock()
	t.counts[kind] += n
	t.mu.Unlock()
}

// opened counts a connection made.
func (t *tally) opened() {
	t.mu.Lock()
	t.counts["opened"]++
	t.open++
	t.peak = max(t.peak, t.open)
	t.mu.Unlock()
}

// ended counts the end of a connection that lasted d. how is "" when
// the attack ended it, notClosed when the server kept it past the
// attacker's patience, else how the server closed it (eof, reset...);
// only the server's closes go into the close-time histogram.
func (t *tally) ended(d time.Duration, how string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.open--
	switch how {
	case "":
		t.counts["held_at_end"]++
	case notClosed:
		t.counts[notClosed]++
	default:
		t.counts["closed_by_server"]++
		t.counts["closed_"+how]++
		t.closes.Record(d)
	}
}

// notClosed is how a connection ends that the server did not close in time.
const notClosed = "not_closed"

// openNow is the number of connections open now.
func (t *tally) openNow() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.open
}

// wireTally is a tally as a child reports it.
type wireTally struct {
	Counts map[string]int64   `json:"counts"`
	Peak   int64              `json:"peak_open"`
	Closes *loadgen.Histogram `json:"closes"`
}

// wire copies t for its report: the copy is encoded after t's lock is
// released.
func (t *tally) wire() wireTally {
	t.mu.Lock()
	defer t.mu.Unlock()
	closes := newHist()
	closes.Merge(t.closes)
	return wireTally{Counts: maps.Clone(t.counts), Peak: t.peak, Closes: closes}
}

// merge adds a child's tally to t. The peaks are summed: the children's
// peaks are close in time, so the sum is a fair (upper) estimate.
func (t *tally) merge(w *wireTally) error {
	if w.Closes == nil {
		return errors.New("child tally without a close-time histogram")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, v := range w.Counts {
		t.counts[k] += v
	}
	t.peak += w.Peak
	t.closes.Merge(w.Closes)
	return nil
}

// quantiles are a latency distribution's summary, in milliseconds.
type quantiles struct {
	N   int64   `json:"n"`
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// summarize reads quantiles off a histogram of microseconds; nil when empty.
func summarize(h *loadgen.Histogram) *quantiles {
	if h.TotalCount() == 0 {
		return nil
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return &quantiles{N: h.TotalCount(), P50: ms(h.ValueAtQuantile(50)), P99: ms(h.ValueAtQuantile(99)), Max: ms(h.Max())}
}
