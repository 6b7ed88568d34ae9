package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

func askCommand() *cli.Command {
	return &cli.Command{
		Name:      "ask",
		Usage:     "ask a Launcelot server questions and print each answer on its own line",
		ArgsUsage: "QUESTION...",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "server", Value: "127.0.0.1:1060", Usage: "server `ADDR`"},
			&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "give up after `DURATION`"},
		},
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return fmt.Errorf("ask: give at least one QUESTION, e.g. \"What is your name?\"")
			}
			for _, q := range c.Args().Slice() {
				if !strings.HasSuffix(q, "?") {
					// The server would wait for the '?' until its read timeout.
					return fmt.Errorf("ask: %q does not end with '?'", q)
				}
			}
			return ask(c.String("server"), c.Duration("timeout"), c.Args().Slice())
		},
	}
}

// ask is the book's client: one connection, each question in turn, each
// answer read up to its '.'.
func ask(addr string, timeout time.Duration, questions []string) error {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return fmt.Errorf("ask: %w", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return fmt.Errorf("ask: %w", err)
	}
	r := bufio.NewReader(conn)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for _, q := range questions {
		if _, err := conn.Write([]byte(q)); err != nil {
			return fmt.Errorf("ask %q: %w", q, err)
		}
		answer, err := r.ReadString('.')
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("ask %q: no answer within %v", q, timeout)
		case err != nil:
			return fmt.Errorf("ask %q: server closed the connection without answering (%v)", q, err)
		}
		fmt.Fprintln(out, strings.TrimSpace(answer))
		out.Flush()
	}
	return nil
}
