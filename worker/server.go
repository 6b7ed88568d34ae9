package worker

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/camelot/lancelot/shared/control"
	"github.com/camelot/lancelot/shared/protocol"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("worker: server closed")

// Options configure a Server. Zero durations and limits take the contract's
// defaults.
type Options struct {
	Table            *protocol.Table
	MaxQuestionBytes int
	IdleTimeout      time.Duration
	ReadTimeout      time.Duration
	WriteTimeout     time.Duration
	Logger           *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Table == nil {
		o.Table = protocol.DefaultTable()
	}
	if o.MaxQuestionBytes <= 0 {
		o.MaxQuestionBytes = protocol.DefaultMaxQuestionBytes
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 5 * time.Minute
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 30 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Server serves the Launcelot protocol on any number of listeners.
type Server struct {
	opts Options

	answered, unknown, accepted atomic.Uint64
	active                      atomic.Int64

	// closing tells connections to close at their next question boundary;
	// wakeups counts the times blocked reads were interrupted to see it.
	closing atomic.Bool
	wakeups atomic.Uint64

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	stopped   bool          // no new listeners or connections
	connsDone chan struct{} // closed when stopped and conns is empty
}

// New returns a Server; opts' zero fields take defaults.
func New(opts Options) *Server {
	opts.setDefaults()
	return &Server{
		opts:      opts,
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
		connsDone: make(chan struct{}),
	}
}

// Stats returns the server's counters.
func (s *Server) Stats() control.Stats {
	return control.Stats{
		Answered: s.answered.Load(),
		Unknown:  s.unknown.Load(),
		Accepted: s.accepted.Load(),
		Active:   s.active.Load(),
	}
}

// Serve accepts connections on ln and serves each in its own goroutine. It
// always returns a non-nil error and closes ln; after Shutdown or Close the
// error is ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	if !s.trackListener(ln, true) {
		ln.Close()
		return ErrServerClosed
	}
	defer s.trackListener(ln, false)
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isStopped() {
				return ErrServerClosed
			}
			if !isTransientAcceptError(err) {
				return err
			}
			backoff = nextBackoff(backoff)
			s.opts.Logger.Warn("accept error; retrying", "err", err, "in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		c := &conn{srv: s, nc: nc}
		if !s.trackConn(c, true) {
			nc.Close()
			return ErrServerClosed
		}
		s.accepted.Add(1)
		go c.serve()
	}
}

// nextBackoff doubles the accept backoff from 5ms up to 1s, as net/http does.
func nextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return 5 * time.Millisecond
	}
	return min(2*d, time.Second)
}

// Shutdown stops accepting, keeps serving open connections until they close
// or ctx is done, then closes each at its next question boundary and waits
// for them. It returns ctx.Err() when connections had to be closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	select {
	case <-s.connsDone:
		return nil
	case <-ctx.Done():
	}
	s.closeAtBoundary()
	<-s.connsDone
	return ctx.Err()
}

// Close stops accepting and closes every connection at once.
func (s *Server) Close() error {
	s.stop()
	s.mu.Lock()
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	<-s.connsDone
	return nil
}

// stop closes the listeners and refuses new ones.
func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.stopped = true
	for ln := range s.listeners {
		for _, nc := range sweepQueue(ln, s.opts.Logger) {
			c := &conn{srv: s, nc: nc}
			s.conns[c] = struct{}{}
			s.active.Add(1)
			s.accepted.Add(1)
			go c.serve()
		}
		ln.Close()
	}
	if len(s.conns) == 0 {
		close(s.connsDone)
	}
}

// closeAtBoundary asks every connection to close at its next question
// boundary and wakes the ones blocked in a read so they notice. A woken
// read loses no data: the connection recomputes its deadline and reads on
// if it is mid-question.
func (s *Server) closeAtBoundary() {
	s.closing.Store(true)
	s.wakeups.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.nc.SetReadDeadline(aLongTimeAgo)
	}
}

var aLongTimeAgo = time.Unix(1, 0)

func (s *Server) isStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

func (s *Server) trackListener(ln net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.listeners, ln)
		return true
	}
	if s.stopped {
		return false
	}
	s.listeners[ln] = struct{}{}
	return true
}

func (s *Server) trackConn(c *conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.stopped {
			return false
		}
		s.conns[c] = struct{}{}
		s.active.Add(1)
		return true
	}
	delete(s.conns, c)
	s.active.Add(-1)
	if s.stopped && len(s.conns) == 0 {
		close(s.connsDone)
	}
	return true
}
