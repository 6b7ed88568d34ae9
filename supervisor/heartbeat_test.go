package supervisor

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/config"
)

// newFixedModel is a model with the configuration given, for a scripted
// (not random) run.
func newFixedModel(t *testing.T, workers int, timeout time.Duration) *model {
	m := &model{t: t, rng: rand.New(rand.NewPCG(1, 2)), now: time.Unix(1_000_000, 0), nextPID: 100, lastOK: true, trace: &traceLog{}, wasReady: map[*slot]bool{}}
	cfg := config.Default()
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.Workers = workers
	cfg.WorkerTimeout = timeout
	m.cfgWorkers, m.expected = workers, workers
	m.s = m.newSupervisor(cfg, nil)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("trace:\n%s", m.trace)
		}
		m.s.closeSockets()
	})
	if err := m.s.start(); err != nil {
		t.Fatal(err)
	}
	return m
}

// tick moves the clock by d after the responsive workers' answers are in,
// and lets the supervisor act, as its loop would.
func (m *model) tick(d time.Duration) {
	m.deliverAnswers()
	m.now = m.now.Add(d)
	m.s.settle()
	if !m.unchecked {
		m.check()
	}
}

// runUntil ticks in 10 ms steps until cond holds, and returns how long it
// took; it fails the test past limit.
func (m *model) runUntil(limit time.Duration, what string, cond func() bool) time.Duration {
	m.t.Helper()
	start := m.now
	for !cond() {
		if m.now.Sub(start) > limit {
			m.t.Fatalf("%s: not within %v", what, limit)
		}
		m.tick(10 * time.Millisecond)
	}
	return m.now.Sub(start)
}

// TestLateWorkerSocketsLent: a worker that stops answering (SIGSTOP) has
// its socket lent at its first missed heartbeat answer, within a second
// whatever --worker-timeout is; once it answers again it keeps its socket
// and the loan ends; staying silent, it is killed at --worker-timeout as
// before. A normal start lends nothing.
func TestLateWorkerSocketsLent(t *testing.T) {
	const timeout = 10 * time.Second
	m := newFixedModel(t, 2, timeout)
	for _, f := range m.fakes {
		f.ready = true
		m.s.handle(event{kind: eventReady, worker: f.w})
		m.s.settle()
	}
	if !m.s.ready {
		t.Fatal("supervisor not ready with both workers ready")
	}
	if n := m.s.metrics.lent; len(n) != 0 {
		t.Fatalf("a normal start lent sockets: %v", n)
	}
	m.tick(3 * time.Second / 2) // a while in the healthy rhythm
	m.tick(300 * time.Millisecond)
	good, stopped := m.fakes[0], m.fakes[1]
	k := m.s.slots[1].home[0]
	stopped.hung, stopped.hungAt = true, m.now
	took := m.runUntil(timeout, "socket lent to the other worker", func() bool { return good.serving[k] })
	if took > time.Second {
		t.Errorf("stopped worker's socket lent after %v, want within 1 s (its first missed answer)", took)
	}
	if got := m.s.metrics.lent[lendLate]; got != 1 {
		t.Errorf("sockets lent for lateness = %d, want 1 (all: %v)", got, m.s.metrics.lent)
	}
	m.tick(2 * time.Second)
	if !stopped.serving[k] || stopped.dead {
		t.Fatalf("late worker lost its own socket (serving %v, dead %v)", stopped.serving, stopped.dead)
	}
	stopped.recover()
	took = m.runUntil(time.Second, "the loan ended", func() bool { return !good.serving[k] })
	if took > lateEvery+10*time.Millisecond {
		t.Errorf("loan ended %v after the worker answered again, want within %v", took, lateEvery)
	}
	if !stopped.serving[k] || stopped.dead {
		t.Errorf("recovered worker does not serve its own socket (serving %v, dead %v)", stopped.serving, stopped.dead)
	}
	stopped.hung, stopped.hungAt = true, m.now
	took = m.runUntil(timeout+time.Second, "the silent worker killed", func() bool { return stopped.killed })
	if took < timeout-heartbeatEvery || took > timeout+heartbeatEvery {
		t.Errorf("silent worker killed %v after it stopped, want at --worker-timeout %v after its last answer", took, timeout)
	}
	if got := m.s.metrics.lent[lendLate]; got != 2 {
		t.Errorf("sockets lent for lateness = %d, want 2", got)
	}
}
