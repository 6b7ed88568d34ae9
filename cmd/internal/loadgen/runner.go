package loadgen

import (
	"context"
	"net"
	"sync"
	"time"
)

// share is the part of a load that one process runs. It is also the spec a
// child process reads, hence the JSON tags.
type share struct {
	Mode          Mode          `json:"mode"`
	Server        string        `json:"server"`
	First         int           `json:"first"` // load-wide number of its first connection
	Conns         int           `json:"conns"`
	Probes        int           `json:"probes"`
	Sources       int           `json:"sources"`
	Pipeline      int           `json:"pipeline"`
	Timeout       time.Duration `json:"timeout"`
	SetupTimeout  time.Duration `json:"setup_timeout"`
	ConnExchanges int           `json:"conn_exchanges"`
	// Limit makes a child stop by itself after this long (0: never).
	Limit time.Duration `json:"limit"`
}

// maxOpeners bounds the goroutines that open idle connections at once:
// enough to keep both cores busy, few enough not to flood the backlog.
const maxOpeners = 64

// runner runs one share: setup (idle mode opens its connections), the
// timed phase, and finish (idle mode checks and closes what it held).
type runner struct {
	sh      share
	dial    Dialer
	sc      *script
	rec     *recorder
	openers int
	held    []net.Conn
}

func newRunner(sh share) (*runner, error) {
	addr, err := LoopbackServer(sh.Server)
	if err != nil {
		return nil, err
	}
	r := &runner{sh: sh, sc: newScript(max(sh.Pipeline, 1)),
		dial: Dialer{Server: addr.String(), Sources: loadSources(sh.Sources), Timeout: sh.Timeout}}
	workers := sh.Conns
	if sh.Mode == Idle {
		r.openers = min(sh.Conns, maxOpeners)
		workers = r.openers + sh.Probes
	}
	r.rec = newRecorder(workers)
	return r, nil
}

// failed counts err unless it is nil or the load is stopping.
func failed(ctx context.Context, rec *shard, err error) {
	if err != nil && !stopping(ctx) {
		rec.fail(err)
	}
}

// stopping reports whether ctx is done or about to be: net.Dialer runs its
// own timer for ctx's deadline, so a dial can fail with a timeout a moment
// before ctx itself reports the deadline.
func stopping(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// pause sleeps after a failed dial, doubling from 5 ms to 200 ms, so a
// server that is down is probed, not flooded.
func pause(ctx context.Context, d time.Duration) time.Duration {
	d = min(max(2*d, 5*time.Millisecond), 200*time.Millisecond)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return d
}

// run is the timed phase; it returns when ctx is done (and the sessions
// have drained), also in a share with nothing to run but held connections.
func (r *runner) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	defer func() { <-ctx.Done() }()
	switch r.sh.Mode {
	case Persistent:
		for i := range r.sh.Conns {
			wg.Go(func() { r.persistent(ctx, r.rec.shard(i), r.sh.First+i, r.sh.Pipeline) })
		}
	case Book:
		for i := range r.sh.Conns {
			wg.Go(func() { r.book(ctx, r.rec.shard(i), r.sh.First+i) })
		}
	case Idle:
		for i := range r.sh.Probes {
			wg.Go(func() { r.persistent(ctx, r.rec.shard(r.openers+i), r.sh.First+r.sh.Conns+i, 1) })
		}
	}
}

// persistent is one connection asking with k in flight, reconnecting after
// each failure (or after ConnExchanges answers).
func (r *runner) persistent(ctx context.Context, rec *shard, n, k int) {
	r.connectLoop(ctx, rec, n, func(conn net.Conn) error {
		s := newSession(ctx, conn, r.sc, k, n, r.sh.Timeout)
		defer s.close()
		return s.converse(k, r.sh.ConnExchanges, rec.exchange)
	})
}

// book is the book's client, over and over: connect, ask the three
// questions one by one, close.
func (r *runner) book(ctx context.Context, rec *shard, n int) {
	r.connectLoop(ctx, rec, n, func(conn net.Conn) error {
		s := newSession(ctx, conn, r.sc, 1, 0, r.sh.Timeout)
		defer s.close()
		return s.converse(1, len(bookOrder), rec.exchange)
	})
}

// connectLoop dials connection n and runs talk on it until ctx ends,
// counting every failure and backing off while dialing fails.
func (r *runner) connectLoop(ctx context.Context, rec *shard, n int, talk func(net.Conn) error) {
	var backoff time.Duration
	for ctx.Err() == nil {
		conn, err := r.dial.Dial(ctx, n)
		if err != nil {
			failed(ctx, rec, unanswered(err))
			backoff = pause(ctx, backoff)
			continue
		}
		backoff = 0
		rec.connected(false)
		failed(ctx, rec, talk(conn))
	}
}

// finish ends the share and returns its tally; call it after run returned.
func (r *runner) finish() tally {
	for _, conn := range r.held {
		if err := peekClosed(conn); err != nil {
			r.rec.shard(0).fail(err)
		} else {
			r.rec.shard(0).held()
		}
		conn.Close()
	}
	r.held = nil
	return r.rec.total()
}
