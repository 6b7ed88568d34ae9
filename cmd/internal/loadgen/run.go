package loadgen

import (
	"context"
	"errors"
	"time"
)

// run is the load's life: children start and open their shares while this
// process opens its own, then the timed phase runs everywhere at once, then
// every tally is merged into the Result.
func (l *Load) run(ctx context.Context, childShares []share) {
	defer close(l.done)
	defer l.cancel()
	kids, err := StartChildren[tally](l.cfg.ChildArgs, childShares, nil)
	if err != nil {
		l.err = err
		return
	}
	defer kids.Close()
	setup, setupErr := l.setup(ctx, kids)
	timedCtx, cancel := l.timedContext(ctx)
	defer cancel()
	// The timed phase ends when timedCtx does, not when the sessions have
	// drained: answers after that are not counted either.
	ended := make(chan time.Time, 1)
	context.AfterFunc(timedCtx, func() { ended <- time.Now() })
	kids.Start()
	began := time.Now()
	l.timed.Store(began.UnixNano())
	l.local.run(timedCtx)
	elapsed := (<-ended).Sub(began)
	t := l.local.finish()
	kidsErr := kids.Results(timedCtx, childGrace, func(ct *tally) error { t.add(ct); return nil })
	l.result = resultOf(&t, l.cfg.Mode, elapsed, setup)
	l.err = errors.Join(setupErr, kidsErr, reached(&t))
}

// setup opens this process's share and waits for the children's.
func (l *Load) setup(ctx context.Context, kids Children[tally]) (time.Duration, error) {
	began := time.Now()
	l.local.setup(ctx)
	// A child's setup has the same bound as ours; allow for its start.
	ctx, cancel := context.WithTimeout(ctx, l.cfg.setupTimeout+10*time.Second)
	defer cancel()
	_, err := kids.Ready(ctx)
	return time.Since(began), err
}

func (l *Load) timedContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if l.cfg.Duration > 0 {
		return context.WithTimeout(ctx, l.cfg.Duration)
	}
	return context.WithCancel(ctx)
}

// reached returns errUnreachable when not one connection succeeded.
func reached(t *tally) error {
	if t.Connections+t.SetupConns == 0 {
		return errUnreachable
	}
	return nil
}

// resultOf turns a merged tally into rates and percentiles.
func resultOf(t *tally, mode Mode, elapsed, setup time.Duration) Result {
	r := Result{
		Exchanges:       t.Exchanges + t.SetupExchanges,
		ExchangesPerS:   perSecond(t.Exchanges, elapsed),
		ConnectionsPerS: perSecond(t.Connections, elapsed),
		Latency: Latency{
			P50: t.Hist.ValueAtQuantile(50), P90: t.Hist.ValueAtQuantile(90),
			P99: t.Hist.ValueAtQuantile(99), P999: t.Hist.ValueAtQuantile(99.9),
			Max: t.Hist.Max(),
		},
		Errors:   map[ErrorKind]int64{},
		Examples: t.Examples,
		Elapsed:  elapsed,
		Setup:    setup,
	}
	if t.Hist.TotalCount() == 0 {
		r.Latency.Max = 0
	}
	for _, k := range Kinds() {
		r.Errors[k] = t.Errors[k]
	}
	if mode == Idle {
		r.ConnectionsPerS = perSecond(t.SetupConns, setup)
		r.IdleHeld = t.Held
	}
	return r
}

func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
