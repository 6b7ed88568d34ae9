package loadgen

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// TestTallyWireKeepsHistogram checks that a tally survives the trip from a
// child process, its histogram included, and merges exactly.
func TestTallyWireKeepsHistogram(t *testing.T) {
	a, b := newTally(), newTally()
	for i := range int64(1000) {
		a.Hist.Record(time.Duration(1+i) * time.Microsecond)
		b.Hist.Record(time.Duration(5000+i) * time.Microsecond)
	}
	a.Exchanges, b.Exchanges = 1000, 1000
	b.Errors[Reset] = 2
	b.Examples = []string{"reset: read: connection reset by peer"}
	data, err := json.Marshal(&b)
	if err != nil {
		t.Fatal(err)
	}
	var back tally
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	a.add(&back)
	r := resultOf(&a, Persistent, time.Second, 0)
	if r.Exchanges != 2000 || r.ExchangesPerS != 2000 || r.Errors[Reset] != 2 || a.Hist.TotalCount() != 2000 {
		t.Errorf("merged = %+v (histogram count %d)", r, a.Hist.TotalCount())
	}
	if fmt.Sprint(r.Examples) != "[reset: read: connection reset by peer]" {
		t.Errorf("merged examples = %q, want the child's one", r.Examples)
	}
	if r.Latency.P50 < 995 || r.Latency.P50 > 1005 || r.Latency.Max < 5995 || r.Latency.Max > 6005 {
		t.Errorf("merged latency = %+v, want p50 ~1000, max ~6000", r.Latency)
	}
}

// TestShardKeepsFewExamples: every failure is counted, the first few kept
// as text with their kind.
