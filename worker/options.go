package worker

import (
	"errors"
	"log/slog"
	"time"

	"github.com/camelot/lancelot/shared/protocol"
	"github.com/camelot/lancelot/shared/proxyproto"
)

// ErrStopped is Listen's error once the engine is stopping: a socket lent
// then goes to another worker.
var ErrStopped = errors.New("worker: engine stopped")

// Options configure an EventLoop. Zero durations and limits take the
// defaults of `lancelot serve`.
type Options struct {
	Table            *protocol.Table
	MaxQuestionBytes int
	IdleTimeout      time.Duration
	// ReadTimeout bounds a started question, and a new connection's wait
	// for its first byte (the PROXY header's, when there is one).
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// MaxConnections caps the engine's open connections; zero is no cap.
	// At the cap a newcomer is admitted by closing the connection silent
	// longest among those that never sent a byte, or is closed at once.
	// Above nine tenths of it, idle timeouts shrink.
	MaxConnections int
	// MaxPendingBytes bounds the memory that connections whose writes are
	// blocked hold, unwritten answers and unanswered input, over the whole
	// engine (DefaultMaxPendingBytes if zero); beyond it, the connection
	// holding the most is closed (see pin).
	MaxPendingBytes int
	// MaxConnectionsPerSource caps connections from one client address
	// (the PROXY header's, when there is one); zero is no cap.
	MaxConnectionsPerSource int
	// Proxy is the PROXY protocol mode (Off by default); ProxyAllow the
	// peers trusted to send a header.
	Proxy      proxyproto.Mode
	ProxyAllow proxyproto.AllowList
	// SummaryInterval is how often client errors are summarized in one log
	// line (every close is logged at debug level instead).
	SummaryInterval time.Duration
	// CloseSpread is the window over which a shutdown that ran out of time
	// closes idle connections, so their clients do not all reconnect in
	// the same instant.
	CloseSpread time.Duration
	Logger      *slog.Logger
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
	if o.MaxPendingBytes <= 0 {
		o.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if o.SummaryInterval <= 0 {
		o.SummaryInterval = 10 * time.Second
	}
	if o.CloseSpread <= 0 {
		o.CloseSpread = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// maxPendingAnswers bounds the answers batched before one write, so a long
// pipelined burst with long custom answers cannot grow the buffer unbounded.
const maxPendingAnswers = 16 << 10

// nextBackoff doubles the accept backoff from 5ms up to 1s, as net/http does.
func nextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return 5 * time.Millisecond
	}
	return min(2*d, time.Second)
}
