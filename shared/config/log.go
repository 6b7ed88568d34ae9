package config

import (
	"fmt"
	"io"
	"log/slog"
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

// NewLogger builds the logger the settings ask for, writing to w. Invalid
// settings fall back to text at info: Validate reports them.
func (c Config) NewLogger(w io.Writer) *slog.Logger {
	level, err := ParseLevel(c.LogLevel)
	if err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
