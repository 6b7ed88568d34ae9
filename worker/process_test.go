package worker_test

// Tests of a worker process's run, with the test as its supervisor on a
// real control channel and its signals sent on Process.Signals.

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/control"
	"github.com/camelot/lancelot/shared/handoff"
	"github.com/camelot/lancelot/shared/lancelottest"
	"github.com/camelot/lancelot/worker"
)

// testWorker is a Process serving one listener on 127.0.0.1.
type testWorker struct {
	t      *testing.T
	addr   string
	sup    *control.Conn        // the supervisor's end of the channel
	fromW  chan control.Message // what the worker sent, until EOF
	sigc   chan os.Signal
	cancel context.CancelFunc
	ran    chan error // Run's result
}

// startWorker runs a Process that drains for at most shutdownTimeout, and
// waits for its ready message. When the test ends, the supervisor's end is
// closed and Run must have returned.
func startWorker(t *testing.T, shutdownTimeout time.Duration) *testWorker {
	t.Helper()
	sup, f, err := control.Pair()
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := control.FromFile(f)
	if err != nil {
		t.Fatal(err)
	}
	ln, addr := lancelottest.ListenerFile(t)
	ctx, cancel := context.WithCancel(context.Background())
	w := &testWorker{t: t, addr: addr, sup: sup, fromW: make(chan control.Message, 16),
		sigc: make(chan os.Signal, 4), cancel: cancel, ran: make(chan error, 1)}
	p := worker.Process{
		Engine:          worker.NewEventLoop(worker.Options{IdleTimeout: long, ReadTimeout: long, WriteTimeout: long}),
		Control:         ctrl,
		Sockets:         []handoff.Socket{{ID: 1, File: ln}},
		Signals:         w.sigc,
		ShutdownTimeout: shutdownTimeout,
		Logger:          slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
	go func() { w.ran <- p.Run(ctx) }()
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer close(w.fromW)
		for {
			m, err := sup.Receive()
			if err != nil {
				return
			}
			w.fromW <- m
		}
	}()
	t.Cleanup(func() {
		cancel()
		sup.Close()
		<-read
		w.waitRun(5 * time.Second)
	})
	w.expect(control.TypeReady)
	return w
}

// expect returns the worker's next message, which must be of type typ.
func (w *testWorker) expect(typ string) control.Message {
	w.t.Helper()
	select {
	case m, ok := <-w.fromW:
		if !ok {
			w.t.Fatalf("control channel closed; want a %q message", typ)
		}
		if m.Type != typ {
			w.t.Fatalf("worker sent %+v, want a %q message", m, typ)
		}
		return m
	case <-time.After(5 * time.Second):
		w.t.Fatalf("no %q message within 5s", typ)
		return control.Message{}
	}
}

// expectClosed waits for the worker to close its end of the channel.
func (w *testWorker) expectClosed() {
	w.t.Helper()
	select {
	case m, ok := <-w.fromW:
		if ok {
			w.t.Fatalf("worker sent %+v, want the channel closed", m)
		}
	case <-time.After(5 * time.Second):
		w.t.Fatalf("control channel still open after 5s")
	}
}

// send sends the worker a message as the supervisor does.
func (w *testWorker) send(m control.Message) {
	w.t.Helper()
	if err := w.sup.Send(m); err != nil {
		w.t.Fatal(err)
	}
}

// stats asks for the worker's counters.
func (w *testWorker) stats(seq uint64) control.Stats {
	w.t.Helper()
	w.send(control.Message{Type: control.TypeStatsRequest, Seq: seq})
	m := w.expect(control.TypeStats)
	if m.Seq != seq || m.Stats == nil {
		w.t.Fatalf("stats answer %+v, want seq %d with stats", m, seq)
	}
	return *m.Stats
}

// waitRun waits for Run to return and returns its result; one wait only.
func (w *testWorker) waitRun(within time.Duration) error {
	w.t.Helper()
	select {
	case err := <-w.ran:
		w.ran <- err // for the cleanup's wait
		return err
	case <-time.After(within):
		w.t.Fatalf("Run did not return within %v", within)
		return nil
	}
}

// TestProcessAnswers: the worker answers its supervisor's heartbeats and
// stats requests, and serves clients meanwhile.
func TestProcessAnswers(t *testing.T) {
	t.Parallel()
	w := startWorker(t, long)
	c := lancelottest.Dial(t, w.addr)
	c.Ask(lancelottest.QName, lancelottest.AName)
	w.send(control.Message{Type: control.TypeAliveRequest, Seq: 3})
	if m := w.expect(control.TypeAlive); m.Seq != 3 {
		t.Errorf("heartbeat answered with seq %d, want 3", m.Seq)
	}
	if st := w.stats(4); st.Answered != 1 || st.Accepted != 1 || st.Active != 1 {
		t.Errorf("stats = %+v, want 1 answered, 1 accepted, 1 active", st)
	}
}

// TestProcessDrain: TERM stops accepting, keeps serving open connections
// and answering stats requests until the shutdown timeout, then closes
// them; the final stats follow, and Run returns nil.
func TestProcessDrain(t *testing.T) {
	t.Parallel()
	const timeout = 500 * time.Millisecond
	w := startWorker(t, timeout)
	c := lancelottest.Dial(t, w.addr)
	c.Ask(lancelottest.QName, lancelottest.AName)
	start := time.Now()
	w.sigc <- syscall.SIGTERM
	c.Ask(lancelottest.QQuest, lancelottest.AQuest)
	if st := w.stats(1); st.Answered != 2 || st.Active != 1 {
		t.Errorf("stats while draining = %+v, want 2 answered, 1 active", st)
	}
	c.ExpectClosed(5 * time.Second)
	if d := time.Since(start); d < timeout/2 {
		t.Errorf("drained connection closed after %v, want about %v", d, timeout)
	}
	if final := w.expect(control.TypeStats); final.Seq != 0 || final.Stats.Answered != 2 || final.Stats.Active != 0 {
		t.Errorf("final stats %+v, want seq 0, 2 answered, none active", final)
	}
	w.expectClosed()
	if err := w.waitRun(5 * time.Second); err != nil {
		t.Errorf("Run() = %v after TERM, want nil", err)
	}
}

// TestProcessCloseNow: QUIT during a drain, QUIT alone, and the
// supervisor's death each close connections at once.
func TestProcessCloseNow(t *testing.T) {
	t.Parallel()
	for name, stop := range map[string]func(w *testWorker){
		"QUIT during a drain": func(w *testWorker) {
			w.sigc <- syscall.SIGTERM
			w.sigc <- syscall.SIGQUIT
		},
		"QUIT":            func(w *testWorker) { w.sigc <- syscall.SIGQUIT },
		"supervisor gone": func(w *testWorker) { w.sup.Close() },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := startWorker(t, long)
			c := lancelottest.Dial(t, w.addr)
			c.Ask(lancelottest.QName, lancelottest.AName)
			stop(w)
			c.ExpectClosed(5 * time.Second)
			if err := w.waitRun(5 * time.Second); err != nil {
				t.Errorf("Run() = %v, want nil", err)
			}
		})
	}
}

// TestProcessContext: Run's context ending closes at once, and Run returns
// its error.
func TestProcessContext(t *testing.T) {
	t.Parallel()
	w := startWorker(t, long)
	w.cancel()
	w.expect(control.TypeStats)
	if err := w.waitRun(5 * time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("Run() = %v after its context ended, want context.Canceled", err)
	}
}
