package loadgen

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Mode is the shape of a load.
type Mode string

// The modes; see the package doc.
const (
	Persistent Mode = "persistent"
	Book       Mode = "book"
	Idle       Mode = "idle"
)

// Defaults for the zero fields of a Config.
const (
	DefaultServer      = "127.0.0.1:1060"
	DefaultConnections = 50
	DefaultTimeout     = 5 * time.Second
	DefaultProbes      = 4
)

const (
	// defaultSetupTimeout bounds idle mode's opening of its connections.
	defaultSetupTimeout = 2 * time.Minute
	// defaultPerSource is below the ~14k connections per source address
	// past which Linux's connect() port search slows sharply.
	defaultPerSource = 10000
)

// errNotLoopback reports a server address outside 127.0.0.0/8 and ::1: the
// load generator never sends traffic off this machine.
var errNotLoopback = errors.New("server is not a loopback address (127.0.0.0/8 or ::1)")

// Config describes a load. The zero value of each field means its default.
type Config struct {
	// Server is the host:port to load; the host must be a loopback IP or
	// "localhost". Default DefaultServer.
	Server string
	// Mode defaults to Persistent.
	Mode Mode
	// Connections is C: client connections (persistent), concurrent
	// clients (book) or connections held open (idle). Default
	// DefaultConnections.
	Connections int
	// Pipeline is the number of questions each persistent connection keeps
	// in flight. Default 1.
	Pipeline int
	// Duration is the length of the timed phase. Zero runs until the
	// context is cancelled or Load.Stop is called.
	Duration time.Duration
	// Timeout bounds one dial and one wait for an answer; a longer wait
	// counts as "timeout". Deadlines are refreshed lazily, so a wait may
	// last up to 1.5×Timeout before it fails. Default DefaultTimeout.
	Timeout time.Duration
	// Probes is the number of persistent connections that measure latency
	// while idle mode holds its connections. Default DefaultProbes.
	Probes int
	// ChildArgs is the command line (argv, program first) of a process
	// that runs ServeChild on its stdin and stdout. When nil, a load that
	// does not fit in one process fails instead of spreading.
	ChildArgs []string

	// The knobs below are set by the package's tests only (see
	// export_test.go), to reach its limits with a small load.

	// setupTimeout bounds idle mode's opening of its connections.
	// Default defaultSetupTimeout.
	setupTimeout time.Duration
	// connExchanges makes a persistent connection close and reconnect
	// after that many answers (0: never).
	connExchanges int
	// perSource is the number of connections one source address carries
	// before the load spreads over 127.0.0.1..127.0.0.N (IPv4 servers
	// only). Default defaultPerSource.
	perSource int
	// perProcess is the number of connections one process may hold. Zero
	// means what RLIMIT_NOFILE allows once raised to its hard limit.
	perProcess int
}

// withDefaults returns cfg with every zero field set to its default.
func (cfg Config) withDefaults() Config {
	if cfg.Server == "" {
		cfg.Server = DefaultServer
	}
	if cfg.Mode == "" {
		cfg.Mode = Persistent
	}
	if cfg.Connections <= 0 {
		cfg.Connections = DefaultConnections
	}
	if cfg.Pipeline <= 0 {
		cfg.Pipeline = 1
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Probes <= 0 {
		cfg.Probes = DefaultProbes
	}
	if cfg.setupTimeout <= 0 {
		cfg.setupTimeout = defaultSetupTimeout
	}
	if cfg.perSource <= 0 {
		cfg.perSource = defaultPerSource
	}
	return cfg
}

// validate checks a Config that has its defaults.
func (cfg Config) validate() error {
	switch cfg.Mode {
	case Persistent, Book, Idle:
	default:
		return fmt.Errorf("unknown mode %q (want persistent, book or idle)", cfg.Mode)
	}
	if cfg.Duration < 0 || cfg.connExchanges < 0 {
		return errors.New("duration and conn exchanges must not be negative")
	}
	_, err := LoopbackServer(cfg.Server)
	return err
}

// LoopbackServer resolves a host:port to a loopback TCP address (in
// 127.0.0.0/8, or ::1) without asking any resolver: only IP literals and
// "localhost" are accepted, so a name can never lead a load off this
// machine.
func LoopbackServer(server string) (*net.TCPAddr, error) {
	host, port, err := net.SplitHostPort(server)
	if err != nil {
		return nil, fmt.Errorf("server %q: %w", server, err)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("server %q: %w", server, errNotLoopback)
	}
	addr, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(ip.String(), port))
	if err != nil {
		return nil, fmt.Errorf("server %q: %w", server, err)
	}
	return addr, nil
}
