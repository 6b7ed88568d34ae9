// Package asynclog is a slog.Handler that never makes its caller wait for
// log I/O. A stalled reader of the log — a slow journald, a log shipper,
// docker's blocking log mode, a pipe nobody reads — must not stop a
// worker's event loops or the supervisor's loop: records go into a bounded
// queue that one goroutine formats and writes; when the queue is full,
// records are dropped and counted, and the next record that gets through
// carries log_lines_dropped=N, so the log says what it lost.
//
// Not a public API: this package serves the lancelot binary only.
package asynclog

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCapacity is the queue length New uses for a capacity of zero:
// records of a few hundred bytes each, a few MiB at most.
const DefaultCapacity = 8192

// DroppedKey is the attribute that tells how many records were dropped
// before the one that carries it.
const DroppedKey = "log_lines_dropped"

// Handler hands records to its writer goroutine. Handlers derived with
// WithAttrs and WithGroup share the queue and the goroutine.
type Handler struct {
	q     *queue
	inner slog.Handler
}

type queue struct {
	items      chan item
	dropped    atomic.Uint64 // since start, for the metric
	unreported atomic.Uint64 // since the last record that got through
	closed     atomic.Bool
	stop       chan struct{}
	stopOnce   sync.Once
	done       chan struct{}
}

type item struct {
	h       slog.Handler
	r       slog.Record
	dropped uint64 // records dropped just before this one
}

// New starts a Handler that writes through inner, queueing up to capacity
// records. Close it to write what is queued.
func New(inner slog.Handler, capacity int) *Handler {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	q := &queue{items: make(chan item, capacity), stop: make(chan struct{}), done: make(chan struct{})}
	go q.run()
	return &Handler{q: q, inner: inner}
}

// Enabled is the inner handler's.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

// Handle queues r, or drops and counts it when the queue is full or the
// handler closed. It never blocks.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	q := h.q
	if q.closed.Load() {
		q.drop(0)
		return nil
	}
	n := q.unreported.Swap(0)
	select {
	case q.items <- item{h: h.inner, r: r.Clone(), dropped: n}:
	default:
		q.drop(n)
	}
	return nil
}

// drop counts one dropped record, and gives back the n it was to report.
func (q *queue) drop(n uint64) {
	q.dropped.Add(1)
	q.unreported.Add(n + 1)
}

// WithAttrs is the inner handler's, on the same queue.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{q: h.q, inner: h.inner.WithAttrs(attrs)}
}

// WithGroup is the inner handler's, on the same queue.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{q: h.q, inner: h.inner.WithGroup(name)}
}

// Dropped returns how many records were dropped since start.
func (h *Handler) Dropped() uint64 {
	return h.q.dropped.Load()
}

// Close stops taking records and writes those queued, for at most timeout
// (the reader may be stalled for good). Later records are dropped.
func (h *Handler) Close(timeout time.Duration) {
	q := h.q
	q.closed.Store(true)
	q.stopOnce.Do(func() { close(q.stop) })
	select {
	case <-q.done:
	case <-time.After(timeout):
	}
}

// run writes the queued records until Close, then what is left, and a
// last record for the ones dropped since the last written.
func (q *queue) run() {
	defer close(q.done)
	var last slog.Handler
	for {
		select {
		case it := <-q.items:
			q.write(it)
			last = it.h
		case <-q.stop:
			for {
				select {
				case it := <-q.items:
					q.write(it)
					last = it.h
				default:
					if n := q.unreported.Swap(0); n > 0 && last != nil {
						r := slog.NewRecord(time.Now(), slog.LevelWarn, "log lines dropped: the log's reader was too slow", 0)
						q.write(item{h: last, r: r, dropped: n})
					}
					return
				}
			}
		}
	}
}

func (q *queue) write(it item) {
	if it.dropped > 0 {
		it.r.AddAttrs(slog.Uint64(DroppedKey, it.dropped))
	}
	it.h.Handle(context.Background(), it.r)
}
