package loadgen

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// setup opens idle mode's connections, each answered once, within the
// share's SetupTimeout; other modes have no setup. A connection that fails
// is counted and not retried: the held count says how many made it.
func (r *runner) setup(ctx context.Context) {
	if r.sh.Mode != Idle {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, r.sh.SetupTimeout)
	defer cancel()
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range r.openers {
		wg.Go(func() {
			held := r.open(ctx, r.rec.shard(w), &next)
			mu.Lock()
			r.held = append(r.held, held...)
			mu.Unlock()
		})
	}
	wg.Wait()
}

// open takes connection numbers from next until the share has them all.
func (r *runner) open(ctx context.Context, rec *shard, next *atomic.Int64) []net.Conn {
	var held []net.Conn
	count := func(time.Duration) { rec.setupExchange() }
	for ctx.Err() == nil {
		i := int(next.Add(1)) - 1
		if i >= r.sh.Conns {
			break
		}
		conn, err := r.dial.Dial(ctx, r.sh.First+i)
		if err != nil {
			failed(ctx, rec, unanswered(err))
			continue
		}
		rec.connected(true)
		s := newSession(ctx, conn, r.sc, 1, r.sh.First+i, r.sh.Timeout)
		if err := s.converse(1, 1, count); err != nil {
			s.close()
			failed(ctx, rec, err)
			continue
		}
		held = append(held, s.detach())
	}
	return held
}
