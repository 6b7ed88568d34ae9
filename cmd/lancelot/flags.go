package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
	"gopkg.in/yaml.v3"

	"github.com/camelot/lancelot/shared/config"
)

// serveFlags returns serve's flags; every one but --config may also be set
// in the YAML file under its long name. Built afresh for every App because
// altsrc flags keep state.
func serveFlags() []cli.Flag {
	d := config.Default()
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "read settings from this YAML `FILE` (keys = long flag names, plus answers:); flags win"},
		altsrc.NewStringFlag(&cli.StringFlag{Name: "listen", Value: d.Listen, Usage: "listen on `ADDR` (host:port; [::]:1060 for IPv6)"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "workers", Value: d.Workers, Usage: "worker processes, one listening socket each (1..1024; default: number of CPUs)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "pid-file", Usage: "write the supervisor's pid to `FILE` once ready"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "metrics", Usage: "serve Prometheus metrics at http://`ADDR`/metrics"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-question-bytes", Value: d.MaxQuestionBytes, Usage: "close a connection that sends more than this without a '?'"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "idle-timeout", Value: d.IdleTimeout, Usage: "close a connection silent this long between questions"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "read-timeout", Value: d.ReadTimeout, Usage: "a started question must complete within this"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "write-timeout", Value: d.WriteTimeout, Usage: "cut a client that does not read its answers for this long"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "shutdown-timeout", Value: d.ShutdownTimeout, Usage: "on TERM, serve open connections this long before closing them at a question boundary"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "log-format", Value: d.LogFormat, Usage: "text or json"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "log-level", Value: d.LogLevel, Usage: "debug, info, warn or error"}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "cpu-affinity", Usage: "pin worker i to CPU i (mod the CPUs allowed)"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "worker-timeout", Value: d.WorkerTimeout, Usage: "kill (after a stack dump) and replace a worker whose serving loops miss the heartbeat this long (0: off)"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-connections", Usage: "connections per worker (0: the open-files limit minus a reserve)"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-connections-per-source", Usage: "connections per client address per worker (0: no limit)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "proxy-protocol", Value: d.ProxyProtocol, Usage: "PROXY protocol header from trusted peers: off, v1, v2 or auto"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "proxy-allow-from", Usage: "peers trusted to send a PROXY header: `CIDR`[,CIDR...] (required with --proxy-protocol)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "agent-listen", Usage: "answer HAProxy agent checks on `ADDR` (ready / drain / down)"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "drain-delay", Usage: "on TERM, keep serving this long while the agent says drain, then stop"}),
	}
}

func serveCommand(serve func(*cli.Context, serveSettings) error) *cli.Command {
	flags := serveFlags()
	return &cli.Command{
		Name:      "serve",
		Usage:     "run the supervisor and its workers",
		ArgsUsage: "[INTERFACE]",
		Description: "Listens on INTERFACE:1060 when INTERFACE is given (as the book's server does), else on --listen.\n" +
			"Signals: TERM/INT drain and stop, QUIT stops now, HUP reloads, USR2 upgrades the binary, TTIN/TTOU add/remove a worker.",
		Flags:        flags,
		OnUsageError: usageError,
		Before: func(c *cli.Context) error {
			if err := checkConfigFile(c.String("config"), flags); err != nil {
				return err
			}
			return altsrc.InitInputSourceWithContext(flags, altsrc.NewYamlSourceFromFlagFunc("config"))(c)
		},
		Action: func(c *cli.Context) error {
			cfg, err := configFrom(c)
			if err != nil {
				return err
			}
			return serve(c, serveSettings{cfg: cfg})
		},
	}
}

// configFrom resolves flags (already merged with the file by altsrc), the
// INTERFACE argument and the file's answers table into a valid Config.
func configFrom(c *cli.Context) (config.Config, error) {
	cfg := config.Default()
	switch {
	case c.NArg() > 1:
		return cfg, fmt.Errorf("serve: one INTERFACE at most, got %q", c.Args().Slice())
	case c.NArg() == 1 && c.IsSet("listen"):
		return cfg, fmt.Errorf("serve: give INTERFACE or --listen, not both")
	case c.NArg() == 1:
		cfg.Listen = config.ListenAddr(c.Args().First())
	default:
		cfg.Listen = c.String("listen")
	}
	cfg.Workers = c.Int("workers")
	cfg.PIDFile = c.String("pid-file")
	cfg.Metrics = c.String("metrics")
	cfg.MaxQuestionBytes = c.Int("max-question-bytes")
	cfg.IdleTimeout = c.Duration("idle-timeout")
	cfg.ReadTimeout = c.Duration("read-timeout")
	cfg.WriteTimeout = c.Duration("write-timeout")
	cfg.ShutdownTimeout = c.Duration("shutdown-timeout")
	cfg.LogFormat = c.String("log-format")
	cfg.LogLevel = c.String("log-level")
	cfg.CPUAffinity = c.Bool("cpu-affinity")
	cfg.WorkerTimeout = c.Duration("worker-timeout")
	cfg.MaxConnections = c.Int("max-connections")
	cfg.MaxConnectionsPerSource = c.Int("max-connections-per-source")
	cfg.ProxyProtocol = c.String("proxy-protocol")
	cfg.ProxyAllowFrom = c.String("proxy-allow-from")
	cfg.AgentListen = c.String("agent-listen")
	cfg.DrainDelay = c.Duration("drain-delay")
	cfg.ConfigFile = c.String("config")
	if cfg.ConfigFile != "" {
		answers, err := readAnswers(cfg.ConfigFile)
		if err != nil {
			return cfg, err
		}
		cfg.Answers = answers
	}
	return cfg, cfg.Validate()
}

// checkConfigFile rejects what altsrc would silently ignore: a key that is
// no flag (a typo must not pass for a setting) and a file that is not a map.
func checkConfigFile(path string, flags []cli.Flag) error {
	if path == "" {
		return nil
	}
	m, err := readConfigMap(path)
	if err != nil {
		return err
	}
	known := map[string]bool{"answers": true}
	for _, f := range flags {
		known[f.Names()[0]] = true
	}
	delete(known, "config")
	var unknown []string
	for k := range m {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	switch len(unknown) {
	case 0:
	case 1:
		return fmt.Errorf("config %s: unknown key %q", path, unknown[0])
	default:
		return fmt.Errorf("config %s: unknown keys %s", path, quoteAll(unknown))
	}
	// altsrc checks a value's type only when no flag overrides it; a bad
	// file must fail whether or not a flag hides the bad value.
	for _, f := range flags {
		name := f.Names()[0]
		if v, ok := m[name]; ok {
			if want := configValueProblem(f, v); want != "" {
				return fmt.Errorf("config %s: %s: %v is not %s", path, name, v, want)
			}
		}
	}
	return nil
}

// quoteAll quotes each of xs and joins them: "a", "b".
func quoteAll(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = strconv.Quote(x)
	}
	return strings.Join(q, ", ")
}

// configValueProblem says what v, as YAML decoded it, should have been for
// flag f; "" when it is fine.
func configValueProblem(f cli.Flag, v any) string {
	ok := true
	want := ""
	switch f.(type) {
	case *altsrc.IntFlag:
		_, ok = v.(int)
		want = "a whole number"
	case *altsrc.BoolFlag:
		_, ok = v.(bool)
		want = "true or false"
	case *altsrc.StringFlag:
		_, ok = v.(string)
		want = "a string"
	case *altsrc.DurationFlag:
		str, isString := v.(string)
		_, err := time.ParseDuration(str)
		ok = isString && err == nil
		want = "a duration such as 30s or 5m"
	}
	if ok {
		return ""
	}
	return want
}

func readConfigMap(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return m, nil
}

// readAnswers reads the file's answers: map, which replaces the built-in
// table; nil when the file has none.
func readAnswers(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var f struct {
		Answers map[string]string `yaml:"answers"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("config %s: answers: %w", path, err)
	}
	return f.Answers, nil
}
