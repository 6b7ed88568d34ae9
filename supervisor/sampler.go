package supervisor

import (
	"context"
	"sync"
	"time"

	"github.com/camelot/lancelot/shared/control"
)

// statsInterval is how often the supervisor samples each live worker's
// counters, for the per-worker figures of Status: open connections and
// questions per second (the answered count's delta over the interval).
const statsInterval = 2 * time.Second

// workerSample is a live worker's counters at the last sample.
type workerSample struct {
	at    time.Time
	stats control.Stats
	// qps is the questions answered per second between the last two
	// samples; zero until the second.
	qps float64
}

// sampleStats samples the live workers' counters every statsInterval
// until done closes. It only reads the workers through their control
// channels and writes metricsState, so it runs beside the loop.
func (s *Supervisor) sampleStats(done <-chan struct{}) {
	t := time.NewTicker(statsInterval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			s.sample()
		}
	}
}

// sample records each live worker's counters and its answer rate.
func (s *Supervisor) sample() {
	m := &s.metrics
	live := m.liveWorkers()
	results := fetchAll(live)
	now := s.env.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.samples == nil {
		m.samples = make(map[*worker]workerSample)
	}
	for i, w := range live {
		if _, still := m.live[w]; !still {
			continue
		}
		next := workerSample{at: now, stats: results[i]}
		if prev, ok := m.samples[w]; ok && now.After(prev.at) && results[i].Answered >= prev.stats.Answered {
			next.qps = float64(results[i].Answered-prev.stats.Answered) / now.Sub(prev.at).Seconds()
		}
		m.samples[w] = next
	}
}

// liveWorkers is a copy of the live workers, to ask without the lock.
func (m *metricsState) liveWorkers() []*worker {
	m.mu.Lock()
	defer m.mu.Unlock()
	live := make([]*worker, 0, len(m.live))
	for w := range m.live {
		live = append(live, w)
	}
	return live
}

// fetchAll asks every worker for its counters concurrently, each within
// statsDeadline (a worker that does not answer gives its last known ones).
func fetchAll(live []*worker) []control.Stats {
	ctx, cancel := context.WithTimeout(context.Background(), statsDeadline)
	defer cancel()
	results := make([]control.Stats, len(live))
	var wg sync.WaitGroup
	for i, w := range live {
		wg.Go(func() { results[i] = w.proc.fetchStats(ctx) })
	}
	wg.Wait()
	return results
}
