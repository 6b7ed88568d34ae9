package worker_test

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/protocol"
	"github.com/camelot/lancelot/worker"
)

// TestPendingBytesBounded: many clients that pipeline and never read pin
// no more than MaxPendingBytes in the engine. Each would pin about 80 KiB
// (a batch of unwritten answers and a read of unanswered questions), 128
// of them over 8 MiB against a budget of 2 MiB: the engine closes the
// connections pinning the most (counted as write_budget), the pinned total
// exceeds the budget by no more than one connection's hold per loop, and
// only until the loop closes one, the live heap grows by no more than
// twice the budget (the connections' own structures, allocations in
// flight), and a client that reads is still answered.
//
// Not parallel, nor its subtests: the heap it measures is the process's.
func TestPendingBytesBounded(t *testing.T) {
	for _, loops := range []int{1, 3} {
		t.Run(fmt.Sprintf("%dloops", loops), func(t *testing.T) { pendingBytesBounded(t, loops) })
	}
}

func pendingBytesBounded(t *testing.T, loops int) {
	const budget, clients = 2 << 20, 128
	answer := strings.Repeat("x", 1023) + "."
	table, err := protocol.NewTable(map[string]string{"a?": answer})
	if err != nil {
		t.Fatal(err)
	}
	s := startEngine(t, loops, worker.Options{Table: table, MaxPendingBytes: budget})
	burst := []byte(strings.Repeat("a?", 64<<10)) // shared by every writer
	ask(t, s.addr, "a?", answer)                  // every loop is running
	base := liveHeap()
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // after the conns close (cleanups run last first)
	for range clients {
		conn := dialSmall(t, s.addr)
		wg.Go(func() { conn.Write(burst) }) // blocks once the engine stops reading
	}
	// Half must be closed: a blocked one holds about 64 KiB, and nothing
	// else closes them.
	want := uint64(clients / 2)
	maxSeen := int64(0)
	deadline := time.Now().Add(10 * time.Second)
	for s.eng.Stats().Closed["write_budget"] < want {
		maxSeen = max(maxSeen, s.eng.PendingBytes())
		if time.Now().After(deadline) {
			t.Fatalf("closed for the budget: %d, want at least %d (stats %+v)", s.eng.Stats().Closed["write_budget"], want, s.eng.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	maxSeen = max(maxSeen, s.eng.PendingBytes())
	if final := s.eng.PendingBytes(); final > budget {
		t.Errorf("pinned %d bytes, over the budget of %d", final, budget)
	}
	if slack := int64(loops * 96 << 10); maxSeen > budget+slack {
		t.Errorf("pinned up to %d bytes, over the budget of %d and one connection's hold per loop", maxSeen, budget)
	}
	grew := liveHeap() - base
	if grew > 2*budget {
		t.Errorf("live heap grew by %d bytes with %d clients blocked; want at most the budget (%d) and 1 MiB", grew, clients, budget)
	}
	t.Logf("%d loops: pinned at most %d bytes, live heap grew by %d; %d closed for the budget", loops, maxSeen, grew, s.eng.Stats().Closed["write_budget"])
	// A client that reads its answers is served as before.
	ask(t, s.addr, "a?a?", answer+answer)
}

// ask sends questions on a new connection and expects want back.
func ask(t *testing.T, addr, questions, want string) {
	t.Helper()
	c := dialSmall(t, addr)
	c.Write([]byte(questions))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, []byte(want)) {
		t.Errorf("a reading client: %d bytes, %v; want %d bytes of answers", len(got), err, len(want))
	}
	c.Close()
}

// liveHeap is the bytes of live heap objects, after a collection.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
