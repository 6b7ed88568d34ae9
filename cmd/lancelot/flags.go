package main

import (
	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/camelot/lancelot/shared/config"
)

// serveFlags returns serve's flags; every one but --config may also be set
// in the YAML file under its long name. Built afresh for every App because
// altsrc flags keep state.
func serveFlags() []cli.Flag {
	d := config.Default()
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "read settings from this YAML `FILE` (keys = long flag names, plus answers:); flags win"},
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "listen", Value: cli.NewStringSlice(d.Listen...),
			Usage: "listen on `ADDR` (host:port; :1060 is every IPv4 and IPv6 address, 0.0.0.0:1060 IPv4 only); repeat for more"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "workers", Value: d.Workers, DefaultText: "the CPUs this process may use: its affinity mask, capped by the cgroup CPU quota",
			Usage: "`N` worker processes, one listening socket each (1..1024)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "pid-file", Usage: "write the supervisor's pid to `FILE` once ready"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "metrics", Usage: "serve Prometheus metrics at http://`ADDR`/metrics"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-question-bytes", Value: d.MaxQuestionBytes, Usage: "close a connection that sends more than `N` bytes without a '?'"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "idle-timeout", Value: d.IdleTimeout, Usage: "close a connection silent for `DURATION` between questions"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "read-timeout", Value: d.ReadTimeout, Usage: "a new connection's first byte, and a started question's '?', must come within `DURATION`"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "write-timeout", Value: d.WriteTimeout, Usage: "cut a client that does not read its answers for `DURATION`"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "shutdown-timeout", Value: d.ShutdownTimeout, Usage: "on TERM, serve open connections for `DURATION` before closing each at a question boundary"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "log-format", Value: d.LogFormat, Usage: "log `FORMAT`: text or json"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "log-level", Value: d.LogLevel, Usage: "log `LEVEL`: debug, info, warn or error"}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "cpu-affinity", Usage: "pin each worker to its share of the CPUs allowed, as many as its GOMAXPROCS (worker i: the i-th block)"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "worker-timeout", Value: d.WorkerTimeout, Usage: "kill (after a stack dump) and replace a worker whose serving loops miss the heartbeat for `DURATION` (0: off)"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-connections", Usage: "`N` connections per worker at most (0: the open-files limit minus a reserve)"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-connections-per-source", Usage: "`N` connections per client address per worker at most (0: no limit)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "proxy-protocol", Value: d.ProxyProtocol, Usage: "accept a PROXY protocol header (`MODE`: off, v1, v2 or auto) from trusted peers"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "proxy-allow-from", Usage: "peers trusted to send a PROXY header: `CIDR`[,CIDR...] (required with --proxy-protocol)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "agent-listen", Usage: "answer HAProxy agent checks on `ADDR` (ready / drain / down)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "handover", Value: d.Handover, Usage: "`MODE` on: a reload, upgrade or scale-down hands each open connection to a live worker; off: retired workers drain them"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "drain-delay", Usage: "on TERM, keep serving for `DURATION` while the agent says drain, then stop"}),
	}
}

func serveCommand(serve func(*cli.Context, serveSettings) error) *cli.Command {
	flags := serveFlags()
	var file *configFile // the --config file, read once by Before
	return &cli.Command{
		Name:      "serve",
		Usage:     "run the supervisor and its workers",
		ArgsUsage: "[INTERFACE]",
		Description: "Listens on INTERFACE:1060 when INTERFACE is given (as the book's server does), else on --listen.\n" +
			"Signals: TERM/INT drain and stop, QUIT stops now, HUP reloads, USR2 upgrades the binary, TTIN/TTOU add/remove a worker.",
		Flags:        flags,
		OnUsageError: usageError,
		Before: func(c *cli.Context) error {
			path := c.String("config")
			if path == "" {
				return nil
			}
			f, err := readConfigFile(path)
			if err != nil {
				return err
			}
			if err := f.check(flags); err != nil {
				return err
			}
			file = f
			return altsrc.ApplyInputSourceValues(c, f.inputSource(flags), flags)
		},
		Action: func(c *cli.Context) error {
			cfg, err := configFrom(c, file)
			if err != nil {
				return err
			}
			return serve(c, serveSettings{cfg: cfg})
		},
	}
}

// configFrom resolves flags (already merged with the file by altsrc), the
// INTERFACE argument and the file's answers table into a valid Config.
func configFrom(c *cli.Context, file *configFile) (config.Config, error) {
	cfg := config.Default()
	switch {
	case c.NArg() > 1:
		return cfg, usageErrorf("%s: one INTERFACE at most, got %q", c.Command.Name, c.Args().Slice())
	case c.NArg() == 1 && c.IsSet("listen"):
		return cfg, usageErrorf("%s: give INTERFACE or --listen, not both", c.Command.Name)
	case c.NArg() == 1:
		cfg.Listen = []string{config.ListenAddr(c.Args().First())}
	default:
		cfg.Listen = c.StringSlice("listen")
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
	cfg.Handover = c.String("handover")
	cfg.ConfigFile = c.String("config")
	if file != nil {
		cfg.Answers = file.answers
	}
	return cfg, cfg.Validate()
}
