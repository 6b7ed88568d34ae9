package config

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/camelot/lancelot/shared/asynclog"
)

// ParseLevel maps --log-level to a slog level.
func ParseLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("--log-level %q: must be debug, info, warn or error", s)
}

// NewLogger builds the logger the settings ask for, writing to w through
// an asynclog.Handler, so that a slow reader of w never makes a caller
// wait; close the handler before exiting. Invalid settings fall back to
// text at info: Validate reports them.
func (c Config) NewLogger(w io.Writer) (*slog.Logger, *asynclog.Handler) {
	level, err := ParseLevel(c.LogLevel)
	if err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if c.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	async := asynclog.New(h, 0)
	return slog.New(async), async
}
