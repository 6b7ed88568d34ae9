package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/camelot/lancelot/cmd/internal/loadgen"
)

// attackConfig is one attack as its flags give it. It travels to the child
// processes inside their share, hence the JSON tags.
type attackConfig struct {
	Mode     string        `json:"mode"`
	Server   string        `json:"server"`
	Count    int           `json:"count"`    // slots held, or connections made (badq)
	Duration time.Duration `json:"duration"` // the whole attack, setup included

	Sources        int           `json:"sources"`     // 0: enough for PerSource
	PerSource      int           `json:"per_source"`  // connections per source address
	PerProcess     int           `json:"per_process"` // descriptors per process
	Openers        int           `json:"openers"`     // concurrent dials per process
	DialTimeout    time.Duration `json:"dial_timeout"`
	Reconnect      bool          `json:"reconnect"`
	ReconnectDelay time.Duration `json:"reconnect_delay"`
	SockBuf        int           `json:"sockbuf"` // SO_SNDBUF/SO_RCVBUF; 0: kernel default
	ReadyFile      string        `json:"-"`       // the parent writes it

	Interval     time.Duration `json:"interval"`      // trickle: between bytes
	Concurrency  int           `json:"concurrency"`   // badq: concurrent clients
	Question     string        `json:"question"`      // trickle, nonreader, badq
	CloseTimeout time.Duration `json:"close_timeout"` // badq: wait for the server's close
	Payload      int           `json:"payload"`       // nul: NUL bytes sent
	Addresses    bool          `json:"addresses"`     // proxyv2: send the address block too
	Variant      string        `json:"variant"`       // metrics-idle: get or silent
	HeaderBytes  int           `json:"header_bytes"`  // metrics-bigheader: header size
	Chunk        int           `json:"chunk"`         // metrics-bigheader: bytes per write
	ChunkEvery   time.Duration `json:"chunk_every"`   // metrics-bigheader: between writes
}

// Defaults shared by the attacks.
const (
	defaultServer     = "127.0.0.1:1060"
	defaultPerSource  = 10000 // below the ~14k per source where connect() slows
	defaultPerProcess = 16000 // under the 20000 hard RLIMIT_NOFILE, with room to spare
	defaultOpeners    = 512
	defaultQuestion   = "What is your name?"
	unknownQuestion   = "What is the air-speed velocity of an unladen swallow?"
	nameAnswer        = "My name is Sir Lancelot of Camelot."
)

// attackSpec is what one attack mode is: its defaults and its connections'
// behaviour.
type attackSpec struct {
	// churn: connections are made and closed as fast as possible (badq)
	// instead of held.
	churn bool
	// reconnect is the default of --reconnect.
	reconnect bool
	// sources is the default of --sources (0: from --per-source).
	sources int
	// count is the default of --count.
	count int
	// behave is what a held connection does (nil for churn).
	behave behaviour
	// about is the one-line description for -h.
	about string
}

// lookupAttack returns the spec of an attack mode.
func lookupAttack(mode string) (attackSpec, bool) {
	attacks := map[string]attackSpec{
		"silent": {reconnect: true, count: 1000, behave: silentConn,
			about: "connections that never send a byte"},
		"trickle": {reconnect: true, count: 1000, behave: trickleConn,
			about: "one byte of a question every --interval, never the '?'"},
		"nonreader": {reconnect: true, count: 100, behave: nonReaderConn,
			about: "questions pipelined without end; answers never read"},
		"badq": {churn: true, sources: 8, count: 10000,
			about: "connect, ask an unknown question, read until closed; repeat"},
		"nul": {count: 100, behave: nulConn,
			about: "NUL bytes only; the close time is measured"},
		"proxyv2": {count: 100, behave: proxyV2Conn,
			about: "a PROXY v2 header; the close time is measured"},
		"metrics-idle": {reconnect: true, count: 1000, behave: metricsIdleConn,
			about: "idle HTTP keep-alive connections to the metrics address"},
		"metrics-bigheader": {reconnect: true, count: 10, behave: bigHeaderConn,
			about: "~1 MiB request headers sent slowly to the metrics address"},
	}
	spec, ok := attacks[mode]
	return spec, ok
}

// parseAttack parses an attack's flags and checks them.
func parseAttack(mode string, args []string, stderr io.Writer) (attackConfig, error) {
	spec, ok := lookupAttack(mode)
	if !ok {
		return attackConfig{}, fmt.Errorf("unknown attack %q", mode)
	}
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: hostile %s [flags]\n%s\n\nflags:\n", mode, spec.about)
		fs.PrintDefaults()
	}
	cfg := attackConfig{Mode: mode}
	commonFlags(fs, &cfg, spec)
	modeFlags(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		return attackConfig{}, err
	}
	if fs.NArg() > 0 {
		return attackConfig{}, fmt.Errorf("%s: unexpected argument %q", mode, fs.Arg(0))
	}
	return cfg, cfg.validate()
}

// commonFlags registers the flags every attack has.
func commonFlags(fs *flag.FlagSet, cfg *attackConfig, spec attackSpec) {
	fs.StringVar(&cfg.Server, "server", defaultServer, "target host:port (127.0.0.0/8 only)")
	fs.IntVar(&cfg.Count, "count", spec.count, "connections held (badq: connections made)")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "length of the whole attack, setup included")
	fs.IntVar(&cfg.Sources, "sources", spec.sources, "source addresses 127.0.0.2.. to use (0: count / per-source)")
	fs.IntVar(&cfg.PerSource, "per-source", defaultPerSource, "connections per source address")
	fs.IntVar(&cfg.PerProcess, "per-process", defaultPerProcess, "connections per child process")
	fs.IntVar(&cfg.Openers, "openers", defaultOpeners, "concurrent dials per process")
	fs.DurationVar(&cfg.DialTimeout, "dial-timeout", 3*time.Second, "give up a connect after this")
	fs.BoolVar(&cfg.Reconnect, "reconnect", spec.reconnect, "reopen a connection the server closed")
	fs.DurationVar(&cfg.ReconnectDelay, "reconnect-delay", time.Second, "wait before reopening")
	fs.IntVar(&cfg.SockBuf, "sockbuf", 0, "SO_SNDBUF and SO_RCVBUF of each connection (0: kernel default)")
	fs.StringVar(&cfg.ReadyFile, "ready-file", "", "write this file once every connection has been tried")
}

// modeFlags registers the flags of one attack mode.
func modeFlags(fs *flag.FlagSet, cfg *attackConfig) {
	switch cfg.Mode {
	case "trickle":
		fs.DurationVar(&cfg.Interval, "interval", 5*time.Second, "time between two bytes")
		fs.StringVar(&cfg.Question, "question", defaultQuestion, "bytes sent, in turn, never its '?'")
	case "nonreader":
		fs.StringVar(&cfg.Question, "question", defaultQuestion, "the question pipelined")
	case "badq":
		fs.IntVar(&cfg.Concurrency, "concurrency", 64, "concurrent clients")
		fs.StringVar(&cfg.Question, "question", unknownQuestion, "the unknown question")
		fs.DurationVar(&cfg.CloseTimeout, "close-timeout", 5*time.Second, "wait this long for the server's close")
	case "nul":
		fs.IntVar(&cfg.Payload, "payload", 64, "NUL bytes sent on each connection")
	case "proxyv2":
		fs.BoolVar(&cfg.Addresses, "addresses", false, "send the 12-byte address block after the 16-byte header start")
	case "metrics-idle":
		fs.StringVar(&cfg.Variant, "variant", "get", "get: one GET /metrics, then idle; silent: never send a byte")
	case "metrics-bigheader":
		fs.IntVar(&cfg.HeaderBytes, "header-bytes", 1<<20-1024, "request header size (net/http's limit is 1 MiB)")
		fs.IntVar(&cfg.Chunk, "chunk", 64<<10, "bytes per write")
		fs.DurationVar(&cfg.ChunkEvery, "chunk-every", 100*time.Millisecond, "time between writes")
	}
}

// validate checks a parsed attack.
func (cfg attackConfig) validate() error {
	var errs []error
	if _, err := loopbackAddr(cfg.Server); err != nil {
		errs = append(errs, err)
	}
	if cfg.Count < 1 || cfg.Duration <= 0 {
		errs = append(errs, errors.New("--count and --duration must be positive"))
	}
	if cfg.PerSource < 1 || cfg.PerProcess < 1 || cfg.Openers < 1 || cfg.Sources < 0 || cfg.Sources > loadgen.MaxSources {
		errs = append(errs, fmt.Errorf("--per-source, --per-process and --openers must be positive, --sources 0..%d", loadgen.MaxSources))
	}
	if cfg.Mode == "badq" && cfg.Concurrency < 1 {
		errs = append(errs, errors.New("--concurrency must be positive"))
	}
	if cfg.Mode == "trickle" && cfg.Interval <= 0 {
		errs = append(errs, errors.New("--interval must be positive"))
	}
	if cfg.Mode == "metrics-idle" && cfg.Variant != "get" && cfg.Variant != "silent" {
		errs = append(errs, fmt.Errorf("--variant %q: want get or silent", cfg.Variant))
	}
	if cfg.Mode == "metrics-bigheader" && (cfg.HeaderBytes < 64 || cfg.Chunk < 1) {
		errs = append(errs, errors.New("--header-bytes must be at least 64, --chunk positive"))
	}
	return errors.Join(errs...)
}

// loopbackAddr resolves host:port, refusing anything outside 127.0.0.0/8
// without asking a resolver: IPv4 loopback literals and "localhost". The
// attacks' source addresses are IPv4, hence no ::1.
func loopbackAddr(hostport string) (*net.TCPAddr, error) {
	addr, err := loadgen.LoopbackServer(hostport)
	if err != nil {
		return nil, err
	}
	if addr.IP.To4() == nil {
		return nil, fmt.Errorf("server %q: not in 127.0.0.0/8", hostport)
	}
	return addr, nil
}
