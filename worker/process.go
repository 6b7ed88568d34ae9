package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/oklog/run"

	"github.com/camelot/lancelot/shared/control"
	"github.com/camelot/lancelot/shared/handoff"
	"github.com/camelot/lancelot/shared/version"
)

// Process is one worker process's parts, built by main from what the
// supervisor passed it.
type Process struct {
	Engine  *EventLoop
	Control *control.Conn
	// Sockets are the listening sockets the worker starts with; the
	// supervisor lends and takes back others over Control.
	Sockets []handoff.Socket
	// Signals carries TERM, INT and QUIT for the whole run, not only until
	// the first one: a QUIT that arrives during a drain must cut it short,
	// not reach the runtime's default action (a goroutine dump and exit
	// status 2). The caller keeps the subscription until the process
	// exits (never signal.Stop): a signal that arrives after Run returns
	// is then dropped, not given the default action. Nil is none: tests
	// send their own.
	Signals <-chan os.Signal
	// ShutdownTimeout bounds how long a draining worker keeps serving open
	// connections before it closes them at a question boundary.
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
	// LogDropped counts the log lines dropped for a slow reader; nil is
	// none.
	LogDropped func() uint64
}

// stats are the engine's counters and the process's own.
func (p Process) stats() control.Stats {
	st := p.Engine.Stats()
	if p.LogDropped != nil {
		st.LogDropped = p.LogDropped()
	}
	return st
}

// Run serves until a stop, then sends the supervisor its final stats and
// closes the control channel. TERM and INT drain; QUIT, ctx's end, a dead
// supervisor and a failure close at once. It returns nil for a stop that
// was asked for.
//
// Two actors share the work: the owner, whose loop alone acts on the
// engine and answers the supervisor, and the control channel's reader,
// which hands it every message until the owner is done.
func (p Process) Run(ctx context.Context) error {
	for _, s := range p.Sockets {
		if err := p.Engine.Listen(s.ID, s.File); err != nil {
			return fmt.Errorf("listen on socket %d: %w", s.ID, err)
		}
	}
	if err := p.Control.Send(control.Message{Type: control.TypeReady, Version: version.Version}); err != nil {
		return fmt.Errorf("report ready: %w", err)
	}
	p.Logger.Debug("worker accepting", "sockets", len(p.Sockets))
	msgs := make(chan received)
	o := &owner{p: p, msgs: msgs}
	var g run.Group
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return o.run(ctx) }, func(error) { cancel() })
	}
	{
		// A draining worker keeps answering stats requests, so scrapes
		// stay exact: the reader runs until the owner is done.
		quit := make(chan struct{})
		g.Add(func() error { return p.receive(msgs, quit) }, func(error) {
			p.Control.Interrupt()
			close(quit)
		})
	}
	g.Run()
	return o.finish()
}

// received is one result of Control.Receive.
type received struct {
	m   control.Message
	err error
}

// receive hands the owner every message, and the error that ends the
// channel (io.EOF when the supervisor is gone), until quit.
func (p Process) receive(msgs chan<- received, quit <-chan struct{}) error {
	for {
		m, err := p.Control.Receive()
		select {
		case msgs <- received{m, err}:
		case <-quit:
			if m.File != nil {
				m.File.Close()
			}
			return nil
		}
		if err != nil {
			return nil
		}
	}
}
