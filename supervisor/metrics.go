package supervisor

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/camelot/lancelot/shared/control"
)

// Collector returns a Prometheus collector of the service's metrics: the
// workers' counters, summed over live and exited workers, and the
// supervisor's own. A scrape asks each live worker for its counters, so the
// numbers are exact at the moment of the scrape.
func (s *Supervisor) Collector() prometheus.Collector {
	return &collector{s: s}
}

var (
	descAnswered = prometheus.NewDesc("lancelot_questions_answered_total", "Questions answered.", nil, nil)
	descUnknown  = prometheus.NewDesc("lancelot_unknown_questions_total", "Unknown questions (each closed its connection).", nil, nil)
	descAccepted = prometheus.NewDesc("lancelot_connections_accepted_total", "Connections accepted.", nil, nil)
	descActive   = prometheus.NewDesc("lancelot_connections_active", "Connections open now.", nil, nil)
	descWorkers  = prometheus.NewDesc("lancelot_workers", "Worker slots with a ready worker.", nil, nil)
	descRestarts = prometheus.NewDesc("lancelot_worker_restarts_total", "Workers restarted after an unexpected exit.", nil, nil)
)

type collector struct{ s *Supervisor }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAnswered, descUnknown, descAccepted, descActive, descWorkers, descRestarts} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	total, serving, restarts := c.s.stats()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter(descAnswered, total.Answered)
	counter(descUnknown, total.Unknown)
	counter(descAccepted, total.Accepted)
	gauge(descActive, total.Active)
	gauge(descWorkers, int64(serving))
	counter(descRestarts, restarts)
}

// stats sums the counters of exited workers and of every live worker,
// asking each live one concurrently.
func (s *Supervisor) stats() (control.Stats, int, uint64) {
	m := &s.metrics
	m.mu.Lock()
	live := make([]*worker, 0, len(m.live))
	for w := range m.live {
		live = append(live, w)
	}
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), statsDeadline)
	defer cancel()
	results := make([]control.Stats, len(live))
	var wg sync.WaitGroup
	for i, w := range live {
		wg.Go(func() { results[i] = w.fetchStats(ctx) })
	}
	wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	total := m.retired
	for i, w := range live {
		if _, still := m.live[w]; still {
			total = total.Add(results[i])
		}
	}
	return total, m.serving, m.restarts
}
