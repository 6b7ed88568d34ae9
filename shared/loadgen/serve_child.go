package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// ServeChild runs the child end of a load split over processes: it reads
// its share from in, opens it, reports ready on out, runs the timed phase
// from the parent's "go" until in reaches EOF (or ctx is done), and writes
// its tally, histogram included, as the last line on out. A program offers
// it behind a hidden command and names that command in Config.ChildArgs.
//
// It returns after writing the last line; errors are also reported on out.
// The goroutine that watches in for EOF ends when in does.
func ServeChild(ctx context.Context, in io.Reader, out io.Writer) error {
	enc := json.NewEncoder(out)
	err := serveChild(ctx, bufio.NewReader(in), enc)
	if err != nil {
		enc.Encode(childMsg{Error: err.Error()}) // the parent may be gone
	}
	return err
}

func serveChild(ctx context.Context, in *bufio.Reader, enc *json.Encoder) error {
	line, err := in.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read share: %w", err)
	}
	var sh share
	if err := json.Unmarshal(line, &sh); err != nil {
		return fmt.Errorf("read share: %w", err)
	}
	if _, err := raiseFileLimit(); err != nil {
		return err
	}
	r, err := newRunner(sh)
	if err != nil {
		return err
	}
	if sh.Limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, sh.Limit)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	started := watchParent(in, cancel)
	return runChild(ctx, r, started, enc)
}

// watchParent reads the rest of in: it closes started at the "go" line and
// calls stop at EOF (or any other line, or error).
func watchParent(in *bufio.Reader, stop context.CancelFunc) <-chan struct{} {
	started := make(chan struct{})
	go func() {
		defer stop()
		line, err := in.ReadString('\n')
		if err != nil || strings.TrimSpace(line) != strings.TrimSpace(goLine) {
			return
		}
		close(started)
		io.Copy(io.Discard, in)
	}()
	return started
}

// runChild is a share's life in a child: setup, ready, go, timed phase,
// tally.
func runChild(ctx context.Context, r *runner, started <-chan struct{}, enc *json.Encoder) error {
	r.setup(ctx)
	if err := enc.Encode(childMsg{Ready: true}); err != nil {
		return fmt.Errorf("report ready: %w", err)
	}
	select {
	case <-started:
		r.run(ctx)
	case <-ctx.Done():
	}
	t := r.finish()
	w, err := t.wire()
	if err != nil {
		return err
	}
	if err := enc.Encode(childMsg{Tally: &w}); err != nil {
		return fmt.Errorf("report tally: %w", err)
	}
	return nil
}
