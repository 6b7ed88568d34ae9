package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/camelot/lancelot/shared/control"
	"github.com/camelot/lancelot/shared/handover"
)

// stop is a reason for the worker to stop: what it tells the log, whether
// open connections are drained first, and what Run returns.
type stop struct {
	why   string
	drain bool  // TERM or INT: serve open connections up to ShutdownTimeout
	err   error // nil for a stop that was asked for
}

// signalStop is the stop a signal asks for: QUIT closes at once.
func signalStop(sig os.Signal) stop {
	return stop{why: "received signal " + sig.String(), drain: sig != syscall.SIGQUIT}
}

// maxQueuedHeartbeats bounds the heartbeats waiting behind the one in
// flight: a stuck loop answers none, and the supervisor replaces the
// worker anyway.
const maxQueuedHeartbeats = 4

// owner is the worker's state while it runs, owned by the goroutine of
// run: events arrive on channels, as they do in the supervisor's loop.
type owner struct {
	p    Process
	msgs <-chan received // from the control channel's reader

	stop     *stop       // the first reason to stop; nil while serving
	closing  bool        // connections are being closed, drained or not
	deadline *time.Timer // the drain's end; nil unless draining
	peerGone bool        // the control channel reached EOF

	ping    <-chan struct{} // closed once every loop has seen heartbeat pingSeq
	pingSeq uint64
	beats   []uint64 // heartbeats waiting behind the one in flight

	// receiving counts the receiving sides of handovers still running:
	// the worker does not exit while a sender may have a batch in flight
	// to it (see waitReceivers).
	receiving sync.WaitGroup
}

// run serves until a stop, then stops the engine: at once, or by draining
// it until the shutdown timeout, a QUIT or the supervisor's death cuts the
// drain short. It returns once every connection is closed.
func (o *owner) run(ctx context.Context) error {
	e := o.p.Engine
	done := ctx.Done()
	defer o.stopDeadline()
	for {
		select {
		case sig := <-o.p.Signals:
			o.receiveQueued()
			o.stopFor(signalStop(sig))
		case r := <-o.msgs:
			o.receive(r)
		case <-o.ping:
			o.heartbeatAnswered()
		case <-o.deadlineC():
			o.deadline = nil
			o.p.Logger.Info("shutdown timeout passed; closing connections at a question boundary")
			e.raise(engineClosing)
		case err := <-e.failed:
			o.stopFor(stop{why: "listener failed", err: err})
		case <-done:
			done = nil
			o.stopFor(stop{why: "stopped by its caller", err: ctx.Err()})
		case <-e.done:
			return nil
		}
	}
}

// stopFor acts on a reason to stop. The first one drains or closes; a
// later one that does not drain cuts a drain short.
func (o *owner) stopFor(s stop) {
	switch {
	case o.stop == nil:
		o.stop = &s
		// A stopping worker answers no more heartbeats: the supervisor
		// watches only workers that serve.
		o.ping, o.beats = nil, nil
		if s.drain {
			o.p.Logger.Info("draining connections", "reason", s.why, "timeout", o.p.ShutdownTimeout)
			o.deadline = time.NewTimer(o.p.ShutdownTimeout)
			o.p.Engine.raise(engineStopped)
			return
		}
	case s.drain || o.closing:
		return
	}
	o.p.Logger.Info("closing connections now", "reason", s.why)
	o.closing = true
	o.stopDeadline()
	o.p.Engine.raise(engineClosed)
}

// deadlineC is the drain's timer channel; nil blocks forever.
func (o *owner) deadlineC() <-chan time.Time {
	if o.deadline == nil {
		return nil
	}
	return o.deadline.C
}

func (o *owner) stopDeadline() {
	if o.deadline != nil {
		o.deadline.Stop()
		o.deadline = nil
	}
}

// receiveQueued acts on what the control channel's reader already holds:
// the supervisor sends a retiring worker the channel to hand its
// connections into before its TERM, and the select that picks between
// the two must not reorder them.
func (o *owner) receiveQueued() {
	for o.msgs != nil {
		select {
		case r := <-o.msgs:
			o.receive(r)
		default:
			return
		}
	}
}

// receive acts on one result of the control channel's reader.
func (o *owner) receive(r received) {
	switch {
	case errors.Is(r.err, io.EOF):
		// Also cuts a drain short: nobody owns the port now.
		o.msgs, o.peerGone = nil, true
		if o.stop == nil {
			o.p.Logger.Warn("supervisor gone; stopping")
		}
		o.stopFor(stop{why: "supervisor gone"})
	case r.err != nil:
		o.msgs = nil
		o.stopFor(stop{why: "control channel failed", err: fmt.Errorf("control channel: %w", r.err)})
	default:
		if err := o.handle(r.m); err != nil {
			o.stopFor(stop{why: "control channel failed", err: err})
		}
	}
}

// handle answers the supervisor's requests, and takes and gives back the
// sockets it lends.
func (o *owner) handle(m control.Message) error {
	p := o.p
	switch m.Type {
	case control.TypeStatsRequest:
		stats := p.stats()
		return p.Control.Send(control.Message{Type: control.TypeStats, Seq: m.Seq, Stats: &stats})
	case control.TypeAliveRequest:
		o.heartbeat(m.Seq)
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
	case control.TypeHandOver:
		o.handOver(m)
	case control.TypeRetire:
		p.Engine.Retire(m.Socket)
		p.Logger.Debug("retiring a socket: serving its queue, then closing it", "socket", m.Socket)
	}
	return nil
}

// heartbeat asks every serving loop to acknowledge heartbeat seq (see
// EventLoop.pingLoops), or queues it behind the one in flight. A stuck
// loop leaves it unanswered, and the supervisor replaces the worker.
func (o *owner) heartbeat(seq uint64) {
	switch {
	case o.stop != nil:
	case o.ping == nil:
		o.ping, o.pingSeq = o.p.Engine.pingLoops(), seq
	case len(o.beats) < maxQueuedHeartbeats:
		o.beats = append(o.beats, seq)
	}
}

// heartbeatAnswered answers the heartbeat in flight and starts the next.
func (o *owner) heartbeatAnswered() {
	if err := o.p.Control.Send(control.Message{Type: control.TypeAlive, Seq: o.pingSeq}); err != nil {
		o.p.Logger.Debug("heartbeat answer not sent", "err", err)
	}
	o.ping = nil
	if len(o.beats) > 0 {
		seq := o.beats[0]
		o.beats = o.beats[1:]
		o.heartbeat(seq)
	}
}

// finish sends the final stats, unless nobody is left to read them, closes
// the control channel and says what Run returns.
func (o *owner) finish() error {
	o.waitReceivers()
	if !o.peerGone {
		stats := o.p.stats()
		if err := o.p.Control.Send(control.Message{Type: control.TypeStats, Stats: &stats}); err != nil {
			o.p.Logger.Warn("final stats not sent", "err", err)
		}
	}
	o.p.Control.Close()
	if o.stop == nil {
		return nil
	}
	return o.stop.err
}

// handOver starts the worker's side of a handover: sending into the
// channel end m carries, or receiving from it. A receiving side runs until
// the sender closes its end, or the worker exits.
func (o *owner) handOver(m control.Message) {
	p := o.p
	switch m.Role {
	case control.RoleSend:
		s, err := handover.NewSender(m.File)
		if err != nil {
			p.Logger.Warn("handover not started", "err", err)
			return
		}
		p.Logger.Debug("handing connections over", "reason", m.Reason, "share", m.Share)
		p.Engine.HandOver(s, m.Reason, m.Share)
	case control.RoleReceive:
		r, err := handover.NewReceiver(m.File)
		if err != nil {
			p.Logger.Warn("handover not started", "err", err)
			return
		}
		idle := p.ShutdownTimeout + receiveIdleMargin
		o.receiving.Add(1)
		served := p.Engine.Receive(r, idle)
		go func() {
			defer o.receiving.Done()
			if err := <-served; err != nil {
				p.Logger.Warn("handover channel failed", "reason", m.Reason, "err", err)
			}
		}()
	default:
		m.File.Close()
		p.Logger.Warn("handover with an unknown role ignored", "role", m.Role)
	}
}

// waitReceivers lets the receiving sides of handovers answer what their
// senders still send until each sender closes its end, for at most
// receiversExitWait. The engine has stopped, so every batch is refused
// and its connections stay with their sender; a worker that exited with a
// batch unanswered would make its sender close the connections in it (a
// scale-down can retire a worker while a rebalance still sends to it).
func (o *owner) waitReceivers() {
	done := make(chan struct{})
	go func() {
		o.receiving.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(receiversExitWait):
		o.p.Logger.Warn("exiting with a handover still sending to this worker", "waited", receiversExitWait)
	}
}

// receiversExitWait bounds waitReceivers: a sender answered at once closes
// its end within its own ack deadline.
const receiversExitWait = 3 * time.Second

// receiveIdleMargin is how much longer than the shutdown timeout a
// receiver waits for the next batch: a sender holds a connection no
// longer than that, then closes its end or is killed.
const receiveIdleMargin = time.Minute
