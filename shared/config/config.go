// Package config is the configuration both sides of lancelot share: the
// supervisor builds it from flags and the YAML file, and hands all of it
// to each worker it starts (see handoff.Worker); a worker reads the
// settings that shape serving (answers, limits, timeouts, PROXY protocol,
// logging, its CPU share) and ignores the supervisor's own.
//
// Not a public API: this package serves the lancelot binary only.
package config

import (
	"fmt"
	"net"
	"slices"
	"strconv"
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
	// Listen are the addresses to serve, each with one socket per worker.
	Listen           []string      `json:"listen"`
	Workers          int           `json:"workers"`
	PIDFile          string        `json:"pid_file,omitempty"`
	Metrics          string        `json:"metrics,omitempty"`
	MaxQuestionBytes int           `json:"max_question_bytes"`
	IdleTimeout      time.Duration `json:"idle_timeout"`
	ReadTimeout      time.Duration `json:"read_timeout"`
	WriteTimeout     time.Duration `json:"write_timeout"`
	ShutdownTimeout  time.Duration `json:"shutdown_timeout"`
	LogFormat        string        `json:"log_format"`
	LogLevel         string        `json:"log_level"`
	CPUAffinity      bool          `json:"cpu_affinity,omitempty"`
	// WorkerTimeout is how long a worker's serving loops may miss the
	// supervisor's heartbeat before it is killed and replaced; 0 is off.
	WorkerTimeout time.Duration `json:"worker_timeout"`
	// MaxConnections caps one worker's open connections; 0 means the
	// open-files limit minus a reserve, worked out by the worker.
	MaxConnections int `json:"max_connections,omitempty"`
	// MaxConnectionsPerSource caps one worker's connections from one client
	// address; 0 is off.
	MaxConnectionsPerSource int `json:"max_connections_per_source,omitempty"`
	// ProxyProtocol is off, v1, v2 or auto; ProxyAllowFrom lists the
	// peers (CIDRs, comma separated) trusted to send the header.
	ProxyProtocol  string `json:"proxy_protocol"`
	ProxyAllowFrom string `json:"proxy_allow_from,omitempty"`
	// AgentListen is the HAProxy agent-check address; empty is off.
	AgentListen string `json:"agent_listen,omitempty"`
	// DrainDelay is how long a stop keeps accepting while the agent says
	// drain, so a load balancer stops sending clients first.
	DrainDelay time.Duration `json:"drain_delay,omitempty"`
	// Handover is on (the default: a reload or scale-down hands each open
	// connection to a live worker) or off (retired workers drain them).
	Handover string            `json:"handover,omitempty"`
	Answers  map[string]string `json:"answers,omitempty"`
	// ConfigFile is where the settings were read from, if anywhere; HUP
	// reads it again.
	ConfigFile string `json:"config_file,omitempty"`
}

// Default returns the defaults docs/reference.md lists.
func Default() Config {
	return Config{
		Listen:           []string{":" + Port},
		Workers:          AvailableCPUs().N,
		MaxQuestionBytes: protocol.DefaultMaxQuestionBytes,
		IdleTimeout:      5 * time.Minute,
		ReadTimeout:      30 * time.Second,
		WriteTimeout:     10 * time.Second,
		ShutdownTimeout:  30 * time.Second,
		LogFormat:        "text",
		LogLevel:         "info",
		WorkerTimeout:    10 * time.Second,
		ProxyProtocol:    "off",
		Handover:         "on",
	}
}

// Validate reports the first setting that cannot work, naming it as the
// flag that sets it. The checks run in a fixed order, so the same bad
// configuration always gets the same message.
func (c Config) Validate() error {
	for _, check := range []func() error{
		c.validateAddrs, c.validateCounts, c.validateDurations, c.validateLog, c.validateProxy, c.validateHandover,
	} {
		if err := check(); err != nil {
			return err
		}
	}
	if _, err := c.Table(); err != nil {
		return err
	}
	return nil
}

func (c Config) validateAddrs() error {
	if len(c.Listen) == 0 {
		return fmt.Errorf("--listen: no address to listen on")
	}
	for i, addr := range c.Listen {
		if err := checkAddr(addr); err != nil {
			return fmt.Errorf("--listen %q: %w", addr, err)
		}
		if slices.Contains(c.Listen[:i], addr) {
			return fmt.Errorf("--listen %q: listed twice", addr)
		}
		if j := slices.IndexFunc(c.Listen[:i], func(b string) bool { return SameAddress(addr, b) }); j >= 0 {
			return fmt.Errorf("--listen %q: the same address as %q, in another form", addr, c.Listen[j])
		}
	}
	for _, a := range []struct{ flag, addr string }{{"metrics", c.Metrics}, {"agent-listen", c.AgentListen}} {
		if a.addr == "" {
			continue
		}
		if err := checkAddr(a.addr); err != nil {
			return fmt.Errorf("--%s %q: %w", a.flag, a.addr, err)
		}
	}
	return nil
}

// checkAddr catches, without binding, what a bind would refuse for its
// form: no port, a port out of range, a malformed IP literal. A host name
// is left to the bind, which resolves it.
func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("port %q: not a port number (0..65535) or service name", port)
	}
	looksIP := host != "" && strings.Trim(host, "0123456789.") == "" || strings.Contains(host, ":")
	if looksIP && net.ParseIP(strings.SplitN(host, "%", 2)[0]) == nil {
		return fmt.Errorf("host %q: not an IP address", host)
	}
	return nil
}

// SameAddress reports whether two listen addresses name the same socket
// address: ":PORT" and "[::]:PORT" (both the two-family wildcard), an IP
// written two ways, a port by number and by name. Different addresses on
// one port ("0.0.0.0:1060" beside ":1060", "127.0.0.2:1060" beside it)
// are not the same: serve binds each. Host names compare as written.
func SameAddress(a, b string) bool {
	ka, oka := addressKey(a)
	kb, okb := addressKey(b)
	return oka && okb && ka == kb
}

// addressKey is addr in one canonical form.
func addressKey(addr string) (string, bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", false
	}
	p, err := net.LookupPort("tcp", port)
	if err != nil {
		return "", false
	}
	switch ip := net.ParseIP(host); {
	case host == "" || ip != nil && ip.Equal(net.IPv6unspecified):
		host = "[::]"
	case ip != nil:
		host = ip.String()
	default:
		host = strings.ToLower(host)
	}
	return host + " " + strconv.Itoa(p), true
}

func (c Config) validateCounts() error {
	if c.Workers < 1 || c.Workers > MaxWorkers {
		return fmt.Errorf("--workers %d: must be between 1 and %d", c.Workers, MaxWorkers)
	}
	if c.MaxQuestionBytes < 1 {
		return fmt.Errorf("--max-question-bytes %d: must be at least 1", c.MaxQuestionBytes)
	}
	if c.MaxConnections < 0 {
		return fmt.Errorf("--max-connections %d: must be 0 (automatic) or more", c.MaxConnections)
	}
	if c.MaxConnectionsPerSource < 0 {
		return fmt.Errorf("--max-connections-per-source %d: must be 0 (off) or more", c.MaxConnectionsPerSource)
	}
	return nil
}

func (c Config) validateDurations() error {
	for _, d := range []struct {
		flag     string
		value    time.Duration
		zeroOkay bool
	}{
		{"idle-timeout", c.IdleTimeout, false},
		{"read-timeout", c.ReadTimeout, false},
		{"write-timeout", c.WriteTimeout, false},
		{"shutdown-timeout", c.ShutdownTimeout, false},
		{"worker-timeout", c.WorkerTimeout, true},
		{"drain-delay", c.DrainDelay, true},
	} {
		if d.value < 0 || d.value == 0 && !d.zeroOkay {
			want := "positive"
			if d.zeroOkay {
				want = "0 (off) or positive"
			}
			return fmt.Errorf("--%s %v: must be %s", d.flag, d.value, want)
		}
	}
	return nil
}

func (c Config) validateHandover() error {
	if c.Handover != "" && c.Handover != "on" && c.Handover != "off" {
		return fmt.Errorf("--handover %q: must be on or off", c.Handover)
	}
	return nil
}

// HandoverOn reports whether retired workers hand their connections over.
// An empty value (a configuration from a release without the setting) is
// on.
func (c Config) HandoverOn() bool { return c.Handover != "off" }

func (c Config) validateLog() error {
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("--log-format %q: must be text or json", c.LogFormat)
	}
	_, err := ParseLevel(c.LogLevel)
	return err
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
