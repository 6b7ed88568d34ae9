package main

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/camelot/lancelot/cmd/internal/loadgen"
)

// holder runs a share of an attack that holds connections: one goroutine
// per slot, each keeping one connection open (and reopening it after the
// server closes it, if the attack reconnects).
type holder struct {
	sh     share
	behave behaviour
	dial   loadgen.Dialer
	t      *tally
	// openers bounds the dials in flight, so that a server that stopped
	// accepting cannot make this process pile up thousands of SYNs.
	openers chan struct{}
}

func newHolder(sh share, behave behaviour, t *tally) *holder {
	return &holder{sh: sh, behave: behave, dial: sh.dialer(), t: t, openers: make(chan struct{}, sh.Config.Openers)}
}

// run holds the share's slots until ctx is done. ready is called once
// every slot has tried its first connection. run returns when every slot
// goroutine has.
func (h *holder) run(ctx context.Context, ready func()) {
	var tried, done sync.WaitGroup
	tried.Add(h.sh.Slots)
	for i := range h.sh.Slots {
		done.Go(func() { h.slot(ctx, h.sh.First+i, tried.Done) })
	}
	tried.Wait()
	ready()
	done.Wait()
}

// slot keeps connection number i open until ctx is done.
func (h *holder) slot(ctx context.Context, i int, tried func()) {
	for first := true; ; first = false {
		c, err := h.connect(ctx, i)
		if first {
			tried()
		}
		if ctx.Err() != nil {
			if c != nil {
				c.Close()
			}
			return
		}
		if err != nil {
			h.t.add("connect_"+kindOf(err), 1)
		} else {
			h.hold(ctx, c)
		}
		if !h.sh.Config.Reconnect || !sleepCtx(ctx, h.sh.Config.ReconnectDelay) {
			return
		}
		h.t.add("reconnects", 1)
	}
}

// connect dials connection i once an opener is free.
func (h *holder) connect(ctx context.Context, i int) (net.Conn, error) {
	select {
	case h.openers <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-h.openers }()
	return h.dial.Dial(ctx, i)
}

// hold runs the behaviour on c until the server closes c or ctx is done,
// and records which of the two ended it.
func (h *holder) hold(ctx context.Context, c net.Conn) {
	start := time.Now()
	h.t.opened()
	// Closing c is what stops a behaviour blocked in Read or Write.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	err := h.behave(c, &h.sh.Config, h.t)
	stop()
	c.Close()
	h.t.ended(time.Since(start), howEnded(ctx, err))
}

// howEnded is how a connection ended, for tally.ended: "" if the attack
// ended it (ctx done), else the kind of err.
func howEnded(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return ""
	}
	return kindOf(err)
}

// sleepCtx sleeps d; false if ctx ended first. When both are ready the
// select picks at random (a goroutine starved for d on a loaded machine
// sees both), so ctx is checked again: an ended attack must not count a
// reconnect.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return ctx.Err() == nil
	case <-ctx.Done():
		return false
	}
}
