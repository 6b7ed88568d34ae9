package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
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
	for _, s := range p.Sockets {
		if err := p.Engine.Listen(s.ID, s.File); err != nil {
			return fmt.Errorf("listen on socket %d: %w", s.ID, err)
		}
	}
	heartbeats := make(chan uint64, 4)
	var g run.Group
	g.Add(signalActor(ctx, sigc))
	g.Add(p.controlActor(heartbeats))
	g.Add(p.heartbeatActor(heartbeats))
	// The engine runs until the stop actor below stops it (or a listener
	// fails for good), so its own interrupt has nothing to do.
	g.Add(p.Engine.Wait, func(error) {})
	stopc := make(chan error, 1)
	g.Add(func() error {
		err := p.stopConnections(<-stopc, sigc)
		p.Control.Interrupt() // a draining worker answered scrapes until now
		return err
	}, func(err error) {
		stopc <- err
	})
	if err := p.Control.Send(control.Message{Type: control.TypeReady, Version: version.Version}); err != nil {
		return err
	}
	p.Logger.Debug("worker accepting", "sockets", len(p.Sockets))
	err := g.Run()
	stats := p.stats()
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

// controlActor answers the supervisor's requests, takes and gives back the
// sockets it lends, and notices its death.
func (p Process) controlActor(heartbeats chan<- uint64) (func() error, func(error)) {
	return func() error {
			for {
				m, err := p.Control.Receive()
				if errors.Is(err, io.EOF) {
					// Also cuts a drain short: nobody owns the port now.
					p.Engine.Close()
					return errSupervisorGone
				}
				if err != nil {
					return fmt.Errorf("control channel: %w", err)
				}
				if err := p.handle(m, heartbeats); err != nil {
					return err
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

func (p Process) handle(m control.Message, heartbeats chan<- uint64) error {
	switch m.Type {
	case control.TypeStatsRequest:
		stats := p.stats()
		return p.Control.Send(control.Message{Type: control.TypeStats, Seq: m.Seq, Stats: &stats})
	case control.TypeAliveRequest:
		select {
		case heartbeats <- m.Seq:
		default: // the loops have not answered the last ones yet
		}
	case control.TypeLend:
		if err := p.Engine.Listen(m.Socket, m.File); err != nil {
			// Stopping: the supervisor lends the socket to another worker.
			p.Logger.Debug("lent socket not taken", "socket", m.Socket, "err", err)
		} else {
			p.Logger.Debug("accepting on a lent socket", "socket", m.Socket)
		}
	case control.TypeReclaim:
		p.Engine.Unlisten(m.Socket)
		p.Logger.Debug("gave a socket back", "socket", m.Socket)
	case control.TypeRetire:
		p.Engine.Retire(m.Socket)
		p.Logger.Debug("retiring a socket: serving its queue, then closing it", "socket", m.Socket)
	}
	return nil
}

// heartbeatActor answers each heartbeat once every serving loop has
// acknowledged it (EventLoop.Alive). A stuck loop leaves the heartbeat
// unanswered, and the supervisor replaces the worker.
func (p Process) heartbeatActor(heartbeats <-chan uint64) (func() error, func(error)) {
	ctx, cancel := context.WithCancel(context.Background())
	return func() error {
			for {
				select {
				case seq := <-heartbeats:
					if p.Engine.Alive(ctx) != nil {
						return nil
					}
					if err := p.Control.Send(control.Message{Type: control.TypeAlive, Seq: seq}); err != nil {
						p.Logger.Debug("heartbeat answer not sent", "err", err)
					}
				case <-ctx.Done():
					return nil
				}
			}
		}, func(error) {
			cancel()
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
		go func() { done <- p.Engine.Shutdown(ctx) }()
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
					p.Engine.Close()
				}
			}
		}
	}
	p.Logger.Info("closing connections now", "reason", reason)
	return p.Engine.Close()
}
