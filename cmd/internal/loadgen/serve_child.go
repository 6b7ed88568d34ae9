package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Parent is a child process's end of the pipes to its parent; R is what
// the child reports at the end.
type Parent[R any] struct {
	mu      sync.Mutex // one whole line at a time
	enc     *json.Encoder
	started chan struct{}
}

// Ready tells the parent that the child's setup is done and that it holds
// open connections.
func (p *Parent[R]) Ready(open int64) error {
	return p.write(ChildMessage[R]{Ready: true, Open: open})
}

// Started is closed when the parent sends "go" (Children.Start).
func (p *Parent[R]) Started() <-chan struct{} {
	return p.started
}

func (p *Parent[R]) write(m ChildMessage[R]) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.enc.Encode(m); err != nil {
		return fmt.Errorf("write to parent: %w", err)
	}
	return nil
}

// ServeShare is the child end of a load split over processes: it reads a
// share from in, raises RLIMIT_NOFILE's soft limit to the hard one, and
// calls run with the share and a context that also ends at EOF on in (the
// parent's Stop, or its death). It writes run's result, or the error, as
// the last line on out, and returns after writing it.
//
// The goroutine that watches in for EOF ends when in does.
func ServeShare[S, R any](ctx context.Context, in io.Reader, out io.Writer,
	run func(context.Context, S, *Parent[R]) (R, error)) error {
	p := &Parent[R]{enc: json.NewEncoder(out), started: make(chan struct{})}
	err := serveShare(ctx, bufio.NewReader(in), p, run)
	if err != nil {
		p.write(ChildMessage[R]{Error: err.Error()}) // the parent may be gone
	}
	return err
}

func serveShare[S, R any](ctx context.Context, in *bufio.Reader, p *Parent[R],
	run func(context.Context, S, *Parent[R]) (R, error)) error {
	line, err := in.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read share: %w", err)
	}
	var sh S
	if err := json.Unmarshal(line, &sh); err != nil {
		return fmt.Errorf("read share: %w", err)
	}
	if _, err := raiseFileLimit(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.watch(in, cancel)
	res, err := run(ctx, sh, p)
	if err != nil {
		return err
	}
	return p.write(ChildMessage[R]{Result: &res})
}

// watch reads the rest of in: it closes p.started at the "go" line and
// calls stop at EOF (or any other line, or error).
func (p *Parent[R]) watch(in *bufio.Reader, stop context.CancelFunc) {
	go func() {
		defer stop()
		line, err := in.ReadString('\n')
		if err != nil || strings.TrimSpace(line) != strings.TrimSpace(goLine) {
			return
		}
		close(p.started)
		io.Copy(io.Discard, in)
	}()
}

// ServeChild runs the child end of a load that Start split over processes
// (ServeShare with this package's shares). A program offers it behind a
// hidden command and names that command in Config.ChildArgs.
func ServeChild(ctx context.Context, in io.Reader, out io.Writer) error {
	return ServeShare(ctx, in, out, runShare)
}

// runShare is a share's life in a child: setup, ready, go, timed phase,
// tally.
func runShare(ctx context.Context, sh share, p *Parent[tally]) (tally, error) {
	r, err := newRunner(sh)
	if err != nil {
		return tally{}, err
	}
	if sh.Limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, sh.Limit)
		defer cancel()
	}
	r.setup(ctx)
	if err := p.Ready(int64(len(r.held))); err != nil {
		return tally{}, err
	}
	select {
	case <-p.Started():
		r.run(ctx)
	case <-ctx.Done():
	}
	return r.finish(), nil
}
