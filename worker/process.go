package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/oklog/run"

	"github.com/camelot/lancelot/shared/control"
)

// Engine serves connections on listeners; Server is the goroutine-per-
// connection engine.
type Engine interface {
	// Serve accepts on ln until Shutdown or Close; it closes ln.
	Serve(ln net.Listener) error
	// Shutdown stops accepting, serves open connections until they close or
	// ctx ends, then closes them at a question boundary.
	Shutdown(ctx context.Context) error
	// Close stops accepting and closes every connection now.
	Close() error
	// Stats returns the engine's counters.
	Stats() control.Stats
}

// Process is one worker process's parts, built by main from what the
// supervisor passed it.
type Process struct {
	Server    Engine
	Control   *control.Conn
	Listeners []net.Listener
	// ShutdownTimeout bounds how long a draining worker keeps serving open
	// connections before it closes them at a question boundary.
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
}

// errSupervisorGone stops a worker whose supervisor died: nobody owns the
// port any more, so the worker must not keep serving on it.
var errSupervisorGone = errors.New("supervisor gone")

// Run serves until a signal, the supervisor's death or a fatal accept error
// stops the worker. TERM and INT drain; QUIT and a dead supervisor close at
// once. It returns nil for a stop that was asked for.
func (p Process) Run(ctx context.Context) error {
	// Stop signals stay caught for the whole run, not only until the first
	// one: a QUIT that arrives during a drain must cut it short, not reach
	// the runtime's default action (a goroutine dump and exit status 2).
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	defer signal.Stop(sigc)
	var g run.Group
	g.Add(signalActor(ctx, sigc))
	g.Add(p.controlActor())
	for _, ln := range p.Listeners {
		g.Add(func() error { return p.Server.Serve(ln) }, func(error) { ln.Close() })
	}
	stopc := make(chan error, 1)
	g.Add(func() error {
		err := p.stopConnections(<-stopc, sigc)
		p.Control.Interrupt() // a draining worker answered scrapes until now
		return err
	}, func(err error) {
		stopc <- err
	})
	if err := p.Control.Send(control.Message{Type: control.TypeReady}); err != nil {
		return err
	}
	p.Logger.Debug("worker accepting", "listeners", len(p.Listeners))
	err := g.Run()
	stats := p.Server.Stats()
	if serr := p.Control.Send(control.Message{Type: control.TypeStats, Stats: &stats}); serr != nil && !errors.Is(err, errSupervisorGone) {
		p.Logger.Warn("final stats not sent", "err", serr)
	}
	p.Control.Close()
	var sig *run.SignalError
	switch {
	case errors.As(err, &sig):
		return nil
	case errors.Is(err, errSupervisorGone):
		p.Logger.Warn("supervisor gone; stopped serving")
		return nil
	}
	return err
}

// signalActor ends the group with a *run.SignalError for the first stop
// signal; later ones stay on sigc for stopConnections.
func signalActor(ctx context.Context, sigc <-chan os.Signal) (func() error, func(error)) {
	ctx, cancel := context.WithCancel(ctx)
	return func() error {
		select {
		case sig := <-sigc:
			return &run.SignalError{Signal: sig}
		case <-ctx.Done():
			return ctx.Err()
		}
	}, func(error) { cancel() }
}

// controlActor answers the supervisor's requests and notices its death.
func (p Process) controlActor() (func() error, func(error)) {
	return func() error {
			for {
				m, err := p.Control.Receive()
				if errors.Is(err, io.EOF) {
					// Also cuts a drain short: nobody owns the port now.
					p.Server.Close()
					return errSupervisorGone
				}
				if err != nil {
					return fmt.Errorf("control channel: %w", err)
				}
				if m.Type == control.TypeStatsRequest {
					stats := p.Server.Stats()
					if err := p.Control.Send(control.Message{Type: control.TypeStats, Seq: m.Seq, Stats: &stats}); err != nil {
						return err
					}
				}
			}
		}, func(err error) {
			// A draining worker keeps answering stats requests, so scrapes
			// stay exact; stopConnections interrupts us once it is done.
			if !isDrain(err) {
				p.Control.Interrupt()
			}
		}
}

// isDrain reports whether the group stops for TERM or INT.
func isDrain(reason error) bool {
	var sig *run.SignalError
	return errors.As(reason, &sig) && sig.Signal != syscall.SIGQUIT
}

// stopConnections drains on TERM and INT, and closes at once otherwise.
func (p Process) stopConnections(reason error, sigc <-chan os.Signal) error {
	if isDrain(reason) {
		p.Logger.Info("draining connections", "reason", reason, "timeout", p.ShutdownTimeout)
		ctx, cancel := context.WithTimeout(context.Background(), p.ShutdownTimeout)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- p.Server.Shutdown(ctx) }()
		for {
			select {
			case err := <-done:
				if err != nil {
					p.Logger.Info("shutdown timeout passed; closed connections at a question boundary")
				}
				return nil
			case sig := <-sigc:
				if sig == syscall.SIGQUIT {
					p.Logger.Info("closing connections now", "reason", "received signal "+sig.String())
					p.Server.Close()
				}
			}
		}
	}
	p.Logger.Info("closing connections now", "reason", reason)
	return p.Server.Close()
}
