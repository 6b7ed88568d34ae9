package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/camelot/lancelot/shared/config"
	"github.com/camelot/lancelot/shared/protocol"
)

// healthcheckCommand is `lancelot healthcheck`: a container's HEALTHCHECK,
// run by the container engine inside the container, where there is no
// shell. It asks the server that the container's PID 1 runs, on the
// address PID 1's own command line (and config file) gives it, so the
// image's check follows whatever `serve` flags the container was started
// with.
func healthcheckCommand() *cli.Command {
	return &cli.Command{
		Name:  "healthcheck",
		Usage: "ask the server this container runs (its PID 1) one question; exit 0 if it answers",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "server", Usage: "ask `ADDR` instead of the first address PID 1 serves"},
			&cli.DurationFlag{Name: "timeout", Value: 3 * time.Second, Usage: "give up after `DURATION`"},
		},
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			cfg, err := pid1Config()
			if err != nil {
				return fmt.Errorf("healthcheck: %w", err)
			}
			addr := cfg.Listen[0]
			if c.String("server") != "" {
				addr = c.String("server")
			}
			q, want := healthProbe(cfg.Answers)
			if err := healthcheck(addr, q, want, c.Duration("timeout")); err != nil {
				return fmt.Errorf("healthcheck: %w", err)
			}
			fmt.Fprintf(c.App.Writer, "%s answered %q\n", addr, want)
			return nil
		},
	}
}

// pid1Config is the configuration of the `serve` that runs as PID 1, read
// from its command line (and config file) as HUP re-reads it.
func pid1Config() (config.Config, error) {
	b, err := os.ReadFile("/proc/1/cmdline")
	if err != nil {
		return config.Config{}, fmt.Errorf("PID 1's command line: %w", err)
	}
	args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	if !slices.Contains(args, "serve") {
		return config.Config{}, errors.New("PID 1 is not `lancelot serve`")
	}
	cfg, err := reloadConfig(args)()
	if err != nil {
		return config.Config{}, fmt.Errorf("PID 1's configuration: %w", err)
	}
	return cfg, nil
}

// healthProbe is the question to ask and its answer: the book's first, or the
// first of the configured table's.
func healthProbe(answers map[string]string) (question, answer string) {
	if len(answers) == 0 {
		answers = protocol.DefaultAnswers()
	}
	qs := slices.Sorted(maps.Keys(answers))
	return qs[0], answers[qs[0]]
}

// healthcheck asks addr q on one connection and wants the answer want.
func healthcheck(addr, q, want string, timeout time.Duration) error {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte(q)); err != nil {
		return fmt.Errorf("ask %s: %w", addr, err)
	}
	have, err := bufio.NewReader(io.LimitReader(conn, int64(len(want)+1))).ReadString('.')
	if err != nil {
		return fmt.Errorf("ask %s %q: no answer: %w", addr, q, err)
	}
	if have != want {
		return fmt.Errorf("ask %s %q: answered %q, want %q", addr, q, have, want)
	}
	return nil
}
