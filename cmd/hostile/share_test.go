package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// fakeServer answers "What is your name?" with answer and closes a
// connection after any other question, or after hold if it is set and
// the connection stays silent.
func fakeServer(t *testing.T, answer string, hold time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { serveFake(c, answer, hold) })
		}
	})
	return ln.Addr().String()
}

func serveFake(c net.Conn, answer string, hold time.Duration) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second)) // never outlive the test
	if hold > 0 {
		c.SetReadDeadline(time.Now().Add(hold))
	}
	br := bufio.NewReader(c)
	for {
		q, err := br.ReadString('?')
		if err != nil || q != defaultQuestion {
			return
		}
		io.WriteString(c, answer)
	}
}

func TestGoodClient(t *testing.T) {
	for _, tc := range []struct {
		answer     string
		persistent bool
		wantKind   string
	}{
		{nameAnswer, false, ""},
		{nameAnswer, true, ""},
		{"My name is Sir Robin of Camelot.", false, "wrong_answer"},
		{"My name is Sir Robin of Camelot.", true, "wrong_answer"},
	} {
		cfg := goodConfig{Server: fakeServer(t, tc.answer, 0), Interval: time.Millisecond, Timeout: time.Second,
			Count: 3, Persistent: tc.persistent, Question: defaultQuestion, Answer: nameAnswer}
		r := &goodRecorder{hist: newHist()}
		if tc.persistent {
			askPersistent(t.Context(), cfg, r)
		} else {
			askNewConns(t.Context(), cfg, r)
		}
		res := r.result(cfg, time.Now())
		if tc.wantKind == "" && (res.Count != 3 || res.OK != 3 || res.Latency == nil) {
			t.Errorf("good (persistent %v) against a right server = %+v", tc.persistent, res)
		}
		if tc.wantKind != "" && res.Failures[tc.wantKind] != 3 {
			t.Errorf("good (persistent %v) against a wrong server: failures %v, want 3 %s", tc.persistent, res.Failures, tc.wantKind)
		}
	}
}

func TestHeldConnectionsClosedByServer(t *testing.T) {
	addr := fakeServer(t, nameAnswer, 100*time.Millisecond)
	cfg, err := parseAttack("silent", []string{"--server", addr, "--count", "4", "--reconnect=false"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sh := plan(cfg, attackSpec{}, time.Now())[0]
	sh.Until = time.Now().Add(3 * time.Second)
	ctx, cancel := context.WithDeadline(t.Context(), sh.Until)
	defer cancel()
	tly, readied := newTally(), false
	runShare(ctx, sh, tly, func() { readied = true })
	if !readied || tly.counts["opened"] != 4 || tly.counts["closed_by_server"] != 4 || tly.counts["closed_eof"] != 4 {
		t.Errorf("silent against a 100 ms server: ready %v, counts %v", readied, tly.counts)
	}
	if q := summarize(tly.closes); q == nil || q.P50 < 90 || q.Max > 2000 {
		t.Errorf("close times %+v, want about 100 ms", q)
	}
}

func TestBadQuestionsQuota(t *testing.T) {
	addr := fakeServer(t, nameAnswer, 0)
	cfg, err := parseAttack("badq", []string{"--server", addr, "--count", "50", "--concurrency", "4"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := lookupAttack("badq")
	sh := plan(cfg, spec, time.Now())[0]
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	tly := newTally()
	runShare(ctx, sh, tly, func() {})
	if tly.counts["opened"] != 50 || tly.counts["closed_by_server"] != 50 {
		t.Errorf("badq --count 50: counts %v, want 50 opened and closed by the server", tly.counts)
	}
}

// TestAttackOverChildren runs a whole attack over child processes: 5 slots,
// at most 2 per process, against a server that closes every connection
// after 100 ms. Each slot connects once, so the attack ends as soon as the
// children have reported, well before its duration.
func TestAttackOverChildren(t *testing.T) {
	addr := fakeServer(t, nameAnswer, 100*time.Millisecond)
	var out, stderr bytes.Buffer
	args := []string{"--server", addr, "--count", "5", "--per-process", "2", "--reconnect=false", "--duration", "30s"}
	if err := runAttack(t.Context(), "silent", args, &out, &stderr); err != nil {
		t.Fatalf("runAttack: %v (stderr: %s)", err, stderr.String())
	}
	var res attackResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("result %q: %v", out.String(), err)
	}
	if !res.Ready || res.Processes != 3 || len(res.Errors) > 0 {
		t.Errorf("attack: ready %v, %d processes, errors %q; want ready, 3, none", res.Ready, res.Processes, res.Errors)
	}
	if res.Counts["opened"] != 5 || res.Counts["closed_eof"] != 5 || res.CloseMs == nil || res.CloseMs.N != 5 {
		t.Errorf("attack: counts %v, close times %+v; want 5 opened, 5 closed (eof) and timed", res.Counts, res.CloseMs)
	}
	if res.EndUnixMs-res.StartUnixMs > 20_000 {
		t.Errorf("attack took %d ms: the children did not end on their own", res.EndUnixMs-res.StartUnixMs)
	}
}
