package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"
)

// errUnreachable reports a server that not one connection reached.
var errUnreachable = errors.New("server unreachable")

// errTooManyConnections reports a load that needs more file descriptors
// than one process has, with no Config.ChildArgs to spread it.
var errTooManyConnections = errors.New("too many connections for one process")

// fdReserve is the descriptors a process keeps for itself beyond its
// connections: stdio, the runtime's epoll, pipes to children.
const fdReserve = 64

// childGrace bounds the wait for children's results after the timed phase;
// an idle child checks and closes up to ~20k connections in that time.
const childGrace = 30 * time.Second

// Load is a load running in the background; see Start.
type Load struct {
	cfg    Config
	local  *runner
	cancel context.CancelFunc
	done   chan struct{}
	began  time.Time
	timed  atomic.Int64 // unix ns when the timed phase began; 0 before
	result Result
	err    error
}

// Start checks cfg, makes sure the server accepts a connection (an error
// says if not), and starts the load in the background. It ends after cfg.Duration, when ctx is
// cancelled, or at Stop; with Duration zero it runs until one of the other
// two, which suits a test that keeps a load on a server while it reloads.
func Start(ctx context.Context, cfg Config) (*Load, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	shares, err := planFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("plan the load: %w", err)
	}
	if err := preflight(ctx, cfg); err != nil {
		return nil, err
	}
	local, err := newRunner(shares[0])
	if err != nil {
		return nil, fmt.Errorf("start the load: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	l := &Load{cfg: cfg, local: local, cancel: cancel, done: make(chan struct{}), began: time.Now()}
	go l.run(ctx, shares[1:])
	return l, nil
}

// preflight dials once, so that a server that is not there fails the load
// at once instead of after Duration of refused connections.
func preflight(ctx context.Context, cfg Config) error {
	d := net.Dialer{Timeout: cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", cfg.Server)
	if err != nil {
		return fmt.Errorf("%w (%s): %w", errUnreachable, cfg.Server, err)
	}
	return conn.Close()
}

// planFor splits the load into shares: the first for this process.
func planFor(cfg Config) ([]share, error) {
	perProcess := cfg.perProcess
	limit, err := raiseFileLimit()
	if err != nil {
		return nil, err
	}
	if perProcess <= 0 {
		perProcess = max(limit-openFiles()-fdReserve, 1)
	}
	return plan(cfg, perProcess)
}

// Stop ends the load at once and returns its result as Wait does.
func (l *Load) Stop() (Result, error) {
	l.cancel()
	return l.Wait()
}

// Wait waits for the load to end (Duration, ctx cancelled, or Stop) and
// returns what it measured. The Result is valid even with an error, which
// then says what went wrong besides (no connection at all succeeded, a
// child process failed).
func (l *Load) Wait() (Result, error) {
	<-l.done
	return l.result, l.err
}

// Done is closed when the load has ended.
func (l *Load) Done() <-chan struct{} {
	return l.done
}

// Progress is a live view of this process's part of a load (children
// report only at the end).
type Progress struct {
	Exchanges   int64
	Connections int64
	Errors      int64
	// ByKind splits Errors by kind; kinds not seen yet are absent.
	ByKind map[ErrorKind]int64
	// Elapsed is the time since Start; Timed the time since the timed
	// phase began (zero during setup).
	Elapsed, Timed time.Duration
}

// Progress returns the counts so far; it is safe to call at any time.
func (l *Load) Progress() Progress {
	t := l.local.rec.snapshot()
	p := Progress{Exchanges: t.Exchanges + t.SetupExchanges, Connections: t.Connections + t.SetupConns,
		ByKind: t.Errors, Elapsed: time.Since(l.began)}
	for _, n := range t.Errors {
		p.Errors += n
	}
	if ns := l.timed.Load(); ns != 0 {
		p.Timed = time.Since(time.Unix(0, ns))
	}
	return p
}
