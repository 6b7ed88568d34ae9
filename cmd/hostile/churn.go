package main

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/camelot/lancelot/cmd/internal/loadgen"
)

// churner runs a share of badq: Slots clients, each connecting, asking the
// unknown question and reading until the server closes, over and over,
// until the share's quota of connections is made or ctx is done.
type churner struct {
	sh   share
	dial loadgen.Dialer
	t    *tally
	left atomic.Int64 // connections still to make; unlimited if quota is 0
}

func newChurner(sh share, t *tally) *churner {
	c := &churner{sh: sh, dial: sh.dialer(), t: t}
	c.left.Store(int64(sh.Quota))
	return c
}

// run churns until the quota is made or ctx is done; ready is called at
// once (there is no setup).
func (ch *churner) run(ctx context.Context, ready func()) {
	ready()
	var wg sync.WaitGroup
	for w := range ch.sh.Slots {
		wg.Go(func() { ch.client(ctx, w) })
	}
	wg.Wait()
}

// client is one of the concurrent clients. Successive connections take
// different attack-wide numbers so that they rotate over the sources.
func (ch *churner) client(ctx context.Context, w int) {
	for i := ch.sh.First + w; ctx.Err() == nil && ch.take(); i += ch.sh.Config.Concurrency {
		ch.once(ctx, i)
	}
}

// take claims one connection of the quota.
func (ch *churner) take() bool {
	return ch.sh.Quota == 0 || ch.left.Add(-1) >= 0
}

// once makes connection i: connect, ask, read until closed.
func (ch *churner) once(ctx context.Context, i int) {
	start := time.Now()
	c, err := ch.dial.Dial(ctx, i)
	if err != nil {
		if ctx.Err() == nil {
			ch.t.add("connect_"+kindOf(err), 1)
		}
		return
	}
	ch.t.opened()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	if _, err := io.WriteString(c, ch.sh.Config.Question); err != nil {
		ch.t.ended(time.Since(start), howEnded(ctx, err))
		return
	}
	c.SetReadDeadline(time.Now().Add(ch.sh.Config.CloseTimeout))
	err = waitClosed(c, ch.t)
	how := howEnded(ctx, err)
	if how == "timeout" {
		how = notClosed // the server kept it past --close-timeout
	}
	ch.t.ended(time.Since(start), how)
}
