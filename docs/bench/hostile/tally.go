package main

import (
	"fmt"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram geometry: 1 µs to 1 h at 3 significant digits; wide enough
// for a connection held through a whole attack.
const (
	histMin    = 1
	histMax    = int64(time.Hour / time.Microsecond)
	histDigits = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigits) }

// record adds d to h, clamped to its range.
func record(h *hdrhistogram.Histogram, d time.Duration) {
	h.RecordValue(min(max(d.Microseconds(), histMin), histMax)) // in range by construction
}

// tally is what one process of an attack counted. Safe for concurrent use.
type tally struct {
	mu     sync.Mutex
	counts map[string]int64
	open   int64 // connections open now
	peak   int64 // most connections open at once
	closes *hdrhistogram.Histogram
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
		record(t.closes, d)
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

// wireTally is a tally as a child reports it: the histogram in
// HdrHistogram's compressed encoding, so that percentiles merge exactly.
type wireTally struct {
	Counts map[string]int64 `json:"counts"`
	Peak   int64            `json:"peak_open"`
	Closes string           `json:"closes"`
}

func (t *tally) wire() (wireTally, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	enc, err := t.closes.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return wireTally{}, fmt.Errorf("encode histogram: %w", err)
	}
	counts := make(map[string]int64, len(t.counts))
	for k, v := range t.counts {
		counts[k] = v
	}
	return wireTally{Counts: counts, Peak: t.peak, Closes: string(enc)}, nil
}

// merge adds a child's tally to t. The peaks are summed: the children's
// peaks are close in time, so the sum is a fair (upper) estimate.
func (t *tally) merge(w wireTally) error {
	h, err := hdrhistogram.Decode([]byte(w.Closes))
	if err != nil {
		return fmt.Errorf("decode histogram: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, v := range w.Counts {
		t.counts[k] += v
	}
	t.peak += w.Peak
	t.closes.Merge(h)
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
func summarize(h *hdrhistogram.Histogram) *quantiles {
	if h.TotalCount() == 0 {
		return nil
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return &quantiles{N: h.TotalCount(), P50: ms(h.ValueAtQuantile(50)), P99: ms(h.ValueAtQuantile(99)), Max: ms(h.Max())}
}
