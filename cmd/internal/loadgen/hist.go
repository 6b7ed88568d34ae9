package loadgen

import (
	"encoding/json"
	"fmt"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// histDigits is every histogram's precision: 3 significant digits.
const histDigits = 3

// Histogram is a distribution of durations, recorded in microseconds from
// 1 µs up to a maximum. Its JSON form is HdrHistogram's compressed
// encoding, so that the histograms of child processes merge exactly. Not
// safe for concurrent use.
type Histogram struct {
	*hdrhistogram.Histogram
}

// NewHistogram returns an empty histogram for durations up to limit.
func NewHistogram(limit time.Duration) *Histogram {
	return &Histogram{hdrhistogram.New(1, max(limit.Microseconds(), 2), histDigits)}
}

// Record adds d, clamped to the histogram's range: a sample off the range
// still counts, at its edge.
func (h *Histogram) Record(d time.Duration) {
	h.RecordValue(min(max(d.Microseconds(), 1), h.HighestTrackableValue())) // in range by construction
}

// Merge adds o's samples to h; o may cover a different range.
func (h *Histogram) Merge(o *Histogram) {
	h.Histogram.Merge(o.Histogram)
}

// MarshalJSON encodes h as a JSON string.
func (h *Histogram) MarshalJSON() ([]byte, error) {
	enc, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return nil, fmt.Errorf("encode histogram: %w", err)
	}
	return json.Marshal(string(enc))
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (h *Histogram) UnmarshalJSON(data []byte) error {
	var enc string
	if err := json.Unmarshal(data, &enc); err != nil {
		return fmt.Errorf("decode histogram: %w", err)
	}
	d, err := hdrhistogram.Decode([]byte(enc))
	if err != nil {
		return fmt.Errorf("decode histogram: %w", err)
	}
	h.Histogram = d
	return nil
}
