package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
)

// The child protocol, one JSON value per line. The parent writes the share
// and keeps stdin open; closing it stops the child early. The child writes
// {"ready":...} once every slot has tried its first connection, and at the
// end one {"result":...} or {"error":...}.

// childMsg is one line a child writes.
type childMsg struct {
	Ready  bool       `json:"ready,omitempty"`
	Open   int64      `json:"open,omitempty"` // connections open when ready
	Result *wireTally `json:"result,omitempty"`
	Error  string     `json:"error,omitempty"`
}

// runChild is a child process: it runs the share read from stdin until
// its end time or stdin's EOF, and reports on stdout.
func runChild(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	enc := &lineWriter{enc: json.NewEncoder(stdout)}
	err := runShareFrom(ctx, bufio.NewReader(stdin), enc)
	if err != nil {
		enc.write(childMsg{Error: err.Error()}) // the parent may be gone
	}
	return err
}

func runShareFrom(ctx context.Context, in *bufio.Reader, enc *lineWriter) error {
	line, err := in.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read share: %w", err)
	}
	var sh share
	if err := json.Unmarshal(line, &sh); err != nil {
		return fmt.Errorf("read share: %w", err)
	}
	if err := raiseFileLimit(); err != nil {
		return fmt.Errorf("raise RLIMIT_NOFILE: %w", err)
	}
	ctx, cancel := context.WithDeadline(ctx, sh.Until)
	defer cancel()
	// EOF on stdin is the parent asking to stop (or gone). The goroutine
	// ends with stdin, at the latest when this process exits.
	go func() {
		io.Copy(io.Discard, in)
		cancel()
	}()
	t := newTally()
	runShare(ctx, sh, t, func() { enc.write(childMsg{Ready: true, Open: t.openNow()}) })
	w, err := t.wire()
	if err != nil {
		return err
	}
	return enc.write(childMsg{Result: &w})
}

// runShare runs one share until ctx is done (or a badq quota is made).
func runShare(ctx context.Context, sh share, t *tally, ready func()) {
	spec, _ := lookupAttack(sh.Config.Mode) // checked by the parent
	if spec.churn {
		newChurner(sh, t).run(ctx, ready)
		return
	}
	newHolder(sh, spec.behave, t).run(ctx, ready)
}

// lineWriter writes messages one whole line at a time.
type lineWriter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (w *lineWriter) write(m childMsg) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enc.Encode(m); err != nil {
		return fmt.Errorf("write to parent: %w", err)
	}
	return nil
}
