package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// childMode is the hidden mode in which this binary runs one share of an
// attack for its parent.
const childMode = "child"

// usage is printed for -h and for an unknown mode.
const usage = `usage: hostile MODE [flags]

modes:
  good               well-behaved client (latency, failures, timeline)
  silent             connections that never send a byte
  trickle            slowloris: one byte of a question every few seconds
  nonreader          pipeline questions, never read
  badq               unknown questions as fast as possible
  nul                NUL-only input; time until the server closes
  proxyv2            a PROXY v2 header; time until the server closes
  metrics-idle       idle keep-alive connections to the metrics address
  metrics-bigheader  ~1 MiB request headers sent slowly to the metrics address
  observe            sample the server's process tree (RSS, fds, processes)
  restart            SIGKILL a worker, time until replaced and answering
  probe              ask once, retrying until answered
  report             assemble hostile.sh results into JSON and markdown

hostile MODE -h shows the flags of MODE.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintf(os.Stderr, "hostile: %v\n", err)
		os.Exit(1)
	}
}

// run dispatches a command line to its mode.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no mode given")
	}
	mode, rest := args[0], args[1:]
	switch mode {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	case "good":
		return runGood(ctx, rest, stdout, stderr)
	case "observe":
		return runObserve(ctx, rest, stdout, stderr)
	case "restart":
		return runRestart(ctx, rest, stdout, stderr)
	case "probe":
		return runProbe(ctx, rest, stderr)
	case "report":
		return runReport(rest, stdout, stderr)
	case childMode:
		return runChild(ctx, stdin, stdout)
	}
	if _, ok := lookupAttack(mode); ok {
		return runAttack(ctx, mode, rest, stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown mode %q", mode)
}
