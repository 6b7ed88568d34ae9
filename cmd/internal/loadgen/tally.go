package loadgen

import (
	"fmt"
	"sync"
	"time"
)

// histMax is the longest latency a histogram tells apart: 1 µs to 60 s at
// 3 significant digits take about 140 KB.
const histMax = 60 * time.Second

// maxExamples bounds the failures a tally keeps as text: the first few
// tell what went wrong; a storm of them would only cost memory.
const maxExamples = 5

// maxShards bounds the histograms a process keeps: enough that the few
// goroutines running at once rarely share one, few enough that 20k
// connections don't each carry 140 KB.
const maxShards = 32

// tally is what one part of a load counted, before rates are computed. A
// child process reports it as JSON, histogram included.
type tally struct {
	Exchanges      int64               `json:"exchanges"`       // timed phase
	SetupExchanges int64               `json:"setup_exchanges"` // idle mode's opening ones
	Connections    int64               `json:"connections"`     // timed phase
	SetupConns     int64               `json:"setup_connections"`
	Held           int64               `json:"held"`
	Errors         map[ErrorKind]int64 `json:"errors"`
	Examples       []string            `json:"examples,omitempty"` // the first failures, "kind: error"
	// Hist holds the timed phase's latencies; nil in a snapshot.
	Hist *Histogram `json:"hist,omitempty"`
}

func newTally() tally {
	return tally{Errors: map[ErrorKind]int64{}, Hist: NewHistogram(histMax)}
}

// add merges o into t. Histograms share one geometry, so nothing is dropped.
func (t *tally) add(o *tally) {
	t.addCounts(o)
	if o.Hist != nil {
		t.Hist.Merge(o.Hist)
	}
}

// addCounts merges o's counts, not its histogram, into t.
func (t *tally) addCounts(o *tally) {
	t.Exchanges += o.Exchanges
	t.SetupExchanges += o.SetupExchanges
	t.Connections += o.Connections
	t.SetupConns += o.SetupConns
	t.Held += o.Held
	for k, n := range o.Errors {
		t.Errors[k] += n
	}
	t.addExamples(o.Examples...)
}

// addExamples keeps examples while t has fewer than maxExamples.
func (t *tally) addExamples(examples ...string) {
	t.Examples = append(t.Examples, examples[:min(len(examples), maxExamples-len(t.Examples))]...)
}

// shard is a tally that goroutines record into; a Mutex rather than
// atomics because the histogram needs one anyway.
type shard struct {
	mu sync.Mutex
	t  tally
}

// exchange records one verified answer of the timed phase.
func (s *shard) exchange(latency time.Duration) {
	s.mu.Lock()
	s.t.Exchanges++
	s.t.Hist.Record(latency)
	s.mu.Unlock()
}

// count adds one to the counter of s's tally that field picks.
func (s *shard) count(field func(*tally) *int64) {
	s.mu.Lock()
	*field(&s.t)++
	s.mu.Unlock()
}

func (s *shard) setupExchange() { s.count(func(t *tally) *int64 { return &t.SetupExchanges }) }

func (s *shard) connected(setup bool) {
	if setup {
		s.count(func(t *tally) *int64 { return &t.SetupConns })
	} else {
		s.count(func(t *tally) *int64 { return &t.Connections })
	}
}

// held counts an idle connection still open at the end.
func (s *shard) held() { s.count(func(t *tally) *int64 { return &t.Held }) }

// fail counts err under its kind and keeps it as an example while the
// shard has few.
func (s *shard) fail(err error) {
	kind := Classify(err)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t.Errors[kind]++
	if len(s.t.Examples) < maxExamples {
		s.t.addExamples(fmt.Sprintf("%s: %v", kind, err))
	}
}

// recorder spreads a process's goroutines over its shards.
type recorder struct {
	shards []*shard
}

func newRecorder(workers int) *recorder {
	r := &recorder{shards: make([]*shard, min(max(workers, 1), maxShards))}
	for i := range r.shards {
		r.shards[i] = &shard{t: newTally()}
	}
	return r
}

// shard returns the shard of goroutine i.
func (r *recorder) shard(i int) *shard {
	return r.shards[i%len(r.shards)]
}

// snapshot sums the counts so far, without the histograms.
func (r *recorder) snapshot() tally {
	sum := tally{Errors: map[ErrorKind]int64{}}
	for _, s := range r.shards {
		s.mu.Lock()
		sum.addCounts(&s.t)
		s.mu.Unlock()
	}
	return sum
}

// total merges every shard, histograms included; call it once every
// goroutine recording into r has returned.
func (r *recorder) total() tally {
	sum := newTally()
	for _, s := range r.shards {
		sum.add(&s.t)
	}
	return sum
}
