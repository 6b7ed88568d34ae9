package supervisor

import (
	"maps"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/camelot/lancelot/shared/control"
	"github.com/camelot/lancelot/shared/version"
)

// metricsState is what scrapes and the agent port read, from their own
// goroutines: the live workers, totals of the exited ones, and counters
// the loop keeps.
type metricsState struct {
	mu       sync.Mutex
	live     map[*worker]struct{}
	retired  control.Stats
	restarts uint64
	timeouts uint64
	// stackDumps counts the hung workers asked for their goroutines'
	// stacks before they were killed.
	stackDumps uint64
	reloads    map[string]uint64 // by result: ok, failed
	lent       map[string]uint64 // sockets lent, by reason (see lendLate)
	serving    int
	agent      AgentState
	status     Status
	// successor is the pid of the supervisor that took over, once one has.
	successor int
	// started is when the loop first published its state; slotWorkers are
	// the workers of status.Slots, in order (nil while restarting);
	// slotRestarts count restarts by slot; samples are the live workers'
	// counters as of the last sample (see sampleStats).
	started      time.Time
	slotWorkers  []*worker
	slotRestarts map[int]uint64
	samples      map[*worker]workerSample
	// connLimit is the connections the ready workers admit in all;
	// lentNow counts the sockets served by a worker whose home they are not.
	connLimit int
	lentNow   int
}

// AgentState is what the supervisor tells a load balancer about itself.
type AgentState int

const (
	// AgentDown: no worker is ready.
	AgentDown AgentState = iota
	// AgentReady: serving.
	AgentReady
	// AgentDrain: stopping, lame duck included: send no new clients.
	AgentDrain
)

func (m *metricsState) add(w *worker) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.live[w] = struct{}{}
}

// remove moves an exited worker's last counters into the totals.
func (m *metricsState) remove(w *worker) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.live, w)
	delete(m.samples, w)
	m.retired = m.retired.Add(w.proc.lastStats())
	m.retired.Active = 0
}

func (m *metricsState) countRestart(slot int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.restarts++
	if m.slotRestarts == nil {
		m.slotRestarts = make(map[int]uint64)
	}
	m.slotRestarts[slot]++
}

func (m *metricsState) countTimeout() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.timeouts++
}

func (m *metricsState) countStackDump() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stackDumps++
}

func (m *metricsState) countLent(reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lent == nil {
		m.lent = make(map[string]uint64)
	}
	m.lent[reason]++
}

func (m *metricsState) countReload(ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.reloads == nil {
		m.reloads = map[string]uint64{"ok": 0, "failed": 0}
	}
	if ok {
		m.reloads["ok"]++
	} else {
		m.reloads["failed"]++
	}
}

// updateMetrics publishes what the loop knows, after every event.
func (s *Supervisor) updateMetrics() {
	serving := 0
	for _, sl := range s.slots {
		if sl.cur.healthy() {
			serving++
		}
	}
	agent := AgentReady
	switch {
	case s.handedOver: // the successor serves
	case s.leaving():
		agent = AgentDrain
	case serving == 0:
		agent = AgentDown
	}
	status := s.status()
	slotWorkers := make([]*worker, len(s.slots))
	lent := 0
	for i, sl := range s.slots {
		slotWorkers[i] = sl.cur
		lent += len(status.Slots[i].Lent)
	}
	now := s.env.now()
	m := &s.metrics
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started.IsZero() {
		m.started = now
	}
	status.Restarts = m.restarts
	m.serving = serving
	m.agent = agent
	m.status = status
	m.slotWorkers = slotWorkers
	m.connLimit = serving * s.cfg.ConnectionLimit()
	m.lentNow = lent
}

// Agent returns what the supervisor tells a load balancer now.
func (s *Supervisor) Agent() AgentState {
	s.metrics.mu.Lock()
	defer s.metrics.mu.Unlock()
	return s.metrics.agent
}

// Collector returns a Prometheus collector of the service's metrics: the
// workers' counters, summed over live and exited workers, and the
// supervisor's own. A scrape asks each live worker for its counters, so the
// numbers are exact at the moment of the scrape. logDropped, if not nil,
// counts the supervisor's own dropped log lines.
func (s *Supervisor) Collector(logDropped func() uint64) prometheus.Collector {
	return &collector{s: s, logDropped: logDropped}
}

var (
	descAnswered         = prometheus.NewDesc("lancelot_questions_answered_total", "Questions answered.", nil, nil)
	descUnknown          = prometheus.NewDesc("lancelot_unknown_questions_total", "Unknown questions (each closed its connection).", nil, nil)
	descAccepted         = prometheus.NewDesc("lancelot_connections_accepted_total", "Connections accepted.", nil, nil)
	descActive           = prometheus.NewDesc("lancelot_connections_active", "Connections open now.", nil, nil)
	descClosed           = prometheus.NewDesc("lancelot_connections_closed_total", "Connections the server closed, by reason.", []string{"reason"}, nil)
	descProxy            = prometheus.NewDesc("lancelot_proxy_header_errors_total", "PROXY protocol headers refused, by reason.", []string{"reason"}, nil)
	descHandedOver       = prometheus.NewDesc("lancelot_connections_handed_over_total", "Open connections handed from one worker to another, by reason.", []string{"reason"}, nil)
	descHandoverFailures = prometheus.NewDesc("lancelot_handover_failures_total", "Connections closed because their handover failed (the receiver died, a descriptor could not be passed).", nil, nil)
	descLogDropped       = prometheus.NewDesc("lancelot_log_lines_dropped_total", "Log lines dropped because the log's reader was too slow.", nil, nil)
	descWorkers          = prometheus.NewDesc("lancelot_workers", "Worker slots with a ready worker.", nil, nil)
	descRestarts         = prometheus.NewDesc("lancelot_worker_restarts_total", "Workers restarted after an unexpected exit.", nil, nil)
	descTimeouts         = prometheus.NewDesc("lancelot_worker_timeouts_total", "Workers killed for missing the heartbeat (--worker-timeout).", nil, nil)
	descStackDumps       = prometheus.NewDesc("lancelot_worker_stack_dumps_total", "Hung workers asked for every goroutine's stack (SIGABRT, on their stderr) before the kill.", nil, nil)
	descReloads          = prometheus.NewDesc("lancelot_reloads_total", "Reloads (HUP), by result.", []string{"result"}, nil)
	descLent             = prometheus.NewDesc("lancelot_sockets_lent_total", "Listening sockets lent to another worker, by reason (late, down, rehomed, retired).", []string{"reason"}, nil)
	descConnMax          = prometheus.NewDesc("lancelot_connections_max", "Connections the ready workers admit in all: each worker's cap (--max-connections, or what the open-files limit allows) times the ready workers.", nil, nil)
	descLentNow          = prometheus.NewDesc("lancelot_sockets_lent", "Listening sockets served by a worker they were lent to, because their own slot's worker is down or not ready.", nil, nil)
	descBuildInfo        = prometheus.NewDesc("lancelot_build_info", "The running supervisor's build; always 1.", []string{"version", "revision", "goversion"}, nil)
)

type collector struct {
	s          *Supervisor
	logDropped func() uint64
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAnswered, descUnknown, descAccepted, descActive, descClosed,
		descProxy, descHandedOver, descHandoverFailures, descLogDropped, descWorkers, descRestarts, descTimeouts, descStackDumps, descReloads, descLent, descConnMax, descLentNow, descBuildInfo} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	total, st := c.s.stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter(descAnswered, total.Answered)
	counter(descUnknown, total.Unknown)
	counter(descAccepted, total.Accepted)
	gauge(descActive, total.Active)
	for reason, n := range total.Closed {
		counter(descClosed, n, reason)
	}
	for reason, n := range total.ProxyErrors {
		counter(descProxy, n, reason)
	}
	for _, reason := range []string{control.ReasonReload, control.ReasonUpgrade, control.ReasonScaleDown, control.ReasonRebalance} {
		counter(descHandedOver, total.HandedOver[reason], reason)
	}
	counter(descHandoverFailures, total.HandoverFailures)
	dropped := total.LogDropped
	if c.logDropped != nil {
		dropped += c.logDropped()
	}
	counter(descLogDropped, dropped)
	gauge(descWorkers, int64(st.serving))
	gauge(descConnMax, int64(st.connLimit))
	gauge(descLentNow, int64(st.lentNow))
	counter(descRestarts, st.restarts)
	counter(descTimeouts, st.timeouts)
	counter(descStackDumps, st.stackDumps)
	for result, n := range st.reloads {
		counter(descReloads, n, result)
	}
	for _, reason := range []string{lendLate, lendDown, lendRehomed, lendRetired} { // each from the start
		counter(descLent, st.lent[reason], reason)
	}
	info := version.Get()
	ch <- prometheus.MustNewConstMetric(descBuildInfo, prometheus.GaugeValue, 1, info.Version, info.Revision, info.Go)
}

// supervisorCounts are the loop's own counters, as of a scrape.
type supervisorCounts struct {
	serving, connLimit, lentNow    int
	restarts, timeouts, stackDumps uint64
	reloads, lent                  map[string]uint64
}

// stats sums the counters of exited workers and of every live worker,
// asking each live one concurrently.
func (s *Supervisor) stats() (control.Stats, supervisorCounts) {
	m := &s.metrics
	live := m.liveWorkers()
	results := fetchAll(live)
	m.mu.Lock()
	defer m.mu.Unlock()
	total := m.retired
	for i, w := range live {
		if _, still := m.live[w]; still {
			total = total.Add(results[i])
		}
	}
	return total, supervisorCounts{serving: m.serving, connLimit: m.connLimit, lentNow: m.lentNow, restarts: m.restarts,
		timeouts: m.timeouts, stackDumps: m.stackDumps, reloads: maps.Clone(m.reloads), lent: maps.Clone(m.lent)}
}
