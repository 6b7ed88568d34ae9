package asynclog_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/camelot/lancelot/shared/asynclog"
	"github.com/camelot/lancelot/shared/lancelottest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// gate is a writer that blocks until opened, as a stalled log reader does.
type gate struct {
	lancelottest.SyncBuffer
	open chan struct{}
}

func (g *gate) Write(p []byte) (int, error) {
	<-g.open
	return g.SyncBuffer.Write(p)
}

// TestNeverBlocks logs far more than the queue holds into a writer that
// does not move: every call returns at once, the excess is dropped and
// counted, and the next line that gets through says how many were lost.
func TestNeverBlocks(t *testing.T) {
	g := &gate{open: make(chan struct{})}
	h := asynclog.New(slog.NewTextHandler(g, nil), 10)
	log := slog.New(h).With("slot", 1)
	start := time.Now()
	for i := range 1000 {
		log.Info("line", "i", i)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("1000 log calls into a stalled writer took %v", took)
	}
	// The writer goroutine holds one record, the queue ten.
	if d := h.Dropped(); d < 1000-11 || d > 1000-10 {
		t.Errorf("Dropped() = %d, want about %d", d, 1000-11)
	}
	close(g.open)
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(g.String(), "msg=line") < 10 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	log.Info("after")
	h.Close(5 * time.Second)
	out := g.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(last, `msg=after`) || !strings.Contains(last, "slot=1") || !strings.Contains(last, asynclog.DroppedKey+"=") {
		t.Errorf("last line %q: want the record after the stall, its attributes, and how many were dropped", last)
	}
	if n := strings.Count(out, "msg=line"); n < 10 || n > 11 {
		t.Errorf("%d lines written, want the 10 or 11 that fit", n)
	}
}

// TestCloseWritesQueued: Close writes what is queued, and reports drops
// that no later line could.
func TestCloseWritesQueued(t *testing.T) {
	g := &gate{open: make(chan struct{})}
	h := asynclog.New(slog.NewJSONHandler(g, nil), 2)
	log := slog.New(h)
	for i := range 5 {
		log.Warn("w", "i", i)
	}
	close(g.open)
	h.Close(5 * time.Second)
	if out := g.String(); !strings.Contains(out, `"msg":"log lines dropped: the log's reader was too slow"`) {
		t.Errorf("after Close: %s\nwant a last line about the dropped ones", out)
	}
	log.Warn("late") // after Close: dropped, not written, no panic
	if strings.Contains(g.String(), "late") {
		t.Error("a record after Close was written")
	}
}

// TestLevelsAndGroups: Enabled and groups are the inner handler's.
func TestLevelsAndGroups(t *testing.T) {
	g := &gate{open: make(chan struct{})}
	close(g.open)
	h := asynclog.New(slog.NewTextHandler(g, &slog.HandlerOptions{Level: slog.LevelWarn}), 0)
	log := slog.New(h).WithGroup("conn")
	log.Info("hidden")
	log.Warn("shown", "fd", 7)
	h.Close(5 * time.Second)
	if out := g.String(); strings.Contains(out, "hidden") || !strings.Contains(out, "conn.fd=7") {
		t.Errorf("log = %q; want only the warning, with its group", out)
	}
}
