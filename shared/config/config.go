// Package config is the configuration both sides of lancelot share: the
// supervisor builds it from flags and the YAML file, and hands the part a
// worker needs to each worker it starts.
//
// Not a public API: this package serves the lancelot binary only.
package config

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"time"

	"github.com/camelot/lancelot/shared/protocol"
)

// Port is the Launcelot protocol's port, as in the book.
const Port = "1060"

// MaxWorkers bounds --workers; each worker is a process with its own socket.
const MaxWorkers = 1024

// Config is one server's settings. Its zero value is not valid: start from
// Default.
type Config struct {
	Listen           string            `json:"listen"`
	Workers          int               `json:"workers"`
	PIDFile          string            `json:"pid_file,omitempty"`
	Metrics          string            `json:"metrics,omitempty"`
	MaxQuestionBytes int               `json:"max_question_bytes"`
	IdleTimeout      time.Duration     `json:"idle_timeout"`
	ReadTimeout      time.Duration     `json:"read_timeout"`
	WriteTimeout     time.Duration     `json:"write_timeout"`
	ShutdownTimeout  time.Duration     `json:"shutdown_timeout"`
	LogFormat        string            `json:"log_format"`
	LogLevel         string            `json:"log_level"`
	CPUAffinity      bool              `json:"cpu_affinity,omitempty"`
	Answers          map[string]string `json:"answers,omitempty"`
	// ConfigFile is where the settings were read from, if anywhere; HUP
	// reads it again.
	ConfigFile string `json:"config_file,omitempty"`
}

// Default returns the contract's defaults.
func Default() Config {
	return Config{
		Listen:           ":" + Port,
		Workers:          runtime.NumCPU(),
		MaxQuestionBytes: protocol.DefaultMaxQuestionBytes,
		IdleTimeout:      5 * time.Minute,
		ReadTimeout:      30 * time.Second,
		WriteTimeout:     10 * time.Second,
		ShutdownTimeout:  30 * time.Second,
		LogFormat:        "text",
		LogLevel:         "info",
	}
}

// Validate reports the first setting that cannot work, naming it as the
// flag that sets it.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("--listen %q: %w", c.Listen, err)
	}
	if c.Workers < 1 || c.Workers > MaxWorkers {
		return fmt.Errorf("--workers %d: must be between 1 and %d", c.Workers, MaxWorkers)
	}
	if c.MaxQuestionBytes < 1 {
		return fmt.Errorf("--max-question-bytes %d: must be at least 1", c.MaxQuestionBytes)
	}
	for name, d := range map[string]time.Duration{
		"idle-timeout": c.IdleTimeout, "read-timeout": c.ReadTimeout,
		"write-timeout": c.WriteTimeout, "shutdown-timeout": c.ShutdownTimeout,
	} {
		if d <= 0 {
			return fmt.Errorf("--%s %v: must be positive", name, d)
		}
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("--log-format %q: must be text or json", c.LogFormat)
	}
	if _, err := ParseLevel(c.LogLevel); err != nil {
		return err
	}
	if c.Metrics != "" {
		if _, _, err := net.SplitHostPort(c.Metrics); err != nil {
			return fmt.Errorf("--metrics %q: %w", c.Metrics, err)
		}
	}
	if _, err := c.Table(); err != nil {
		return err
	}
	return nil
}

// Table returns the question table: Answers when set, else the book's.
func (c Config) Table() (*protocol.Table, error) {
	if c.Answers == nil {
		return protocol.DefaultTable(), nil
	}
	return protocol.NewTable(c.Answers)
}

// ListenAddr turns the optional INTERFACE argument of `serve` into an
// address on the protocol's port, as the book's server does.
func ListenAddr(iface string) string {
	if strings.Contains(iface, ":") && !strings.HasPrefix(iface, "[") {
		iface = "[" + iface + "]"
	}
	return iface + ":" + Port
}
