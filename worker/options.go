package worker

import (
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/camelot/lancelot/shared/protocol"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("worker: server closed")

// Options configure an EventLoop. Zero durations and limits take the
// defaults of `lancelot serve`.
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

// errClosing ends a connection at a question boundary during shutdown.
var errClosing = errors.New("server shutting down")

// unknownError carries the question for the log line.
type unknownError struct{ question []byte }

func (e *unknownError) Error() string { return "unknown question" }

// closeLevel is closeLog's level, cheap enough for every close.
func closeLevel(err error) slog.Level {
	if _, ok := err.(*unknownError); ok || err == protocol.ErrTooLong || err == protocol.ErrNotASCII {
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// closeLog is the log line for a connection closed by err: its message and
// attributes but the remote address, which the caller puts first.
func closeLog(err error) (string, []any) {
	var ue *unknownError
	switch {
	case errors.As(err, &ue):
		return "closing connection: unknown question", []any{"question", truncate(ue.question, 80)}
	case errors.Is(err, protocol.ErrTooLong), errors.Is(err, protocol.ErrNotASCII):
		return "closing connection", []any{"reason", err}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "closing connection: timeout", nil
	case errors.Is(err, errClosing):
		return "closing connection at question boundary", nil
	}
	return "connection closed", []any{"err", err}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
