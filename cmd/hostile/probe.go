package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"
)

// runProbe asks one question, again and again until answered or out of
// time: a script's "is the server up yet?".
func runProbe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := goodConfig{Question: defaultQuestion, Answer: nameAnswer}
	fs.StringVar(&cfg.Server, "server", defaultServer, "server host:port (127.0.0.0/8 only)")
	fs.DurationVar(&cfg.Timeout, "timeout", time.Second, "per attempt")
	retry := fs.Duration("retry-for", 10*time.Second, "keep trying this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := loopbackAddr(cfg.Server); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *retry)
	defer cancel()
	for {
		err := askOnce(cfg, time.Now())
		if err == nil {
			return nil
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return fmt.Errorf("probe %s: not answered within %v: %w", cfg.Server, *retry, err)
		}
	}
}
