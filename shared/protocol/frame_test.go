package protocol_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/camelot/lancelot/shared/protocol"
)

func TestNext(t *testing.T) {
	for _, tc := range []struct {
		in       string
		max      int
		question string
		consumed int
		err      error
	}{
		// Success cases.
		{in: "What is your name?", question: "What is your name?", consumed: 18},
		{in: "What is your name?What", question: "What is your name?", consumed: 18},
		{in: " \t\r\nWhat is your quest?", question: "What is your quest?", consumed: 23},
		{in: "abc?", max: 3, question: "abc?", consumed: 4},
		// Need-more cases: whitespace may be dropped, the rest kept.
		{in: "", consumed: 0},
		{in: "\r\n", consumed: 2},
		{in: "  What is", consumed: 2},
		{in: "abc", max: 3, consumed: 0},
		// Failure cases.
		{in: "abcd", max: 3, err: protocol.ErrTooLong},
		{in: "abcd?", max: 3, err: protocol.ErrTooLong},
		{in: "  Wh\xc3\xa9?", consumed: 2, err: protocol.ErrNotASCII},
		{in: "Wh\xff", err: protocol.ErrNotASCII},
		// Control bytes no question holds are refused at once, without
		// waiting for a '?': NUL, a PROXY v2 signature, DEL.
		{in: "\x00", err: protocol.ErrNotASCII},
		{in: "\x00\x00\x00\x00", err: protocol.ErrNotASCII},
		{in: "\r\n\r\n\x00\r\nQUIT\n", consumed: 4, err: protocol.ErrNotASCII},
		{in: "Who\x7f", err: protocol.ErrNotASCII},
		{in: "Who\x1b[2J?", err: protocol.ErrNotASCII},
		// Tab, CR and LF inside a question are text: an unknown question,
		// decided at its '?'.
		{in: "What is\tyour\r\nname?", question: "What is\tyour\r\nname?", consumed: 19},
	} {
		q, n, err := protocol.Next([]byte(tc.in), tc.max)
		if string(q) != tc.question || n != tc.consumed || !errors.Is(err, tc.err) {
			t.Errorf("Next(%q, %d) = %q, %d, %v; want %q, %d, %v",
				tc.in, tc.max, q, n, err, tc.question, tc.consumed, tc.err)
		}
	}
}

func TestNextPipelined(t *testing.T) {
	buf := []byte("What is your name?\nWhat is your quest? What is your favorite color?")
	var got []string
	for {
		q, n, err := protocol.Next(buf, 0)
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		buf = buf[n:]
		if q == nil {
			break
		}
		got = append(got, string(q))
	}
	if len(got) != 3 || got[2] != "What is your favorite color?" || len(buf) != 0 {
		t.Errorf("pipelined questions = %q, rest %q", got, buf)
	}
}

func TestDefaultTable(t *testing.T) {
	table := protocol.DefaultTable()
	for q, want := range map[string]string{
		"What is your name?":           "My name is Sir Lancelot of Camelot.",
		"What is your quest?":          "To seek the Holy Grail.",
		"What is your favorite color?": "Blue.",
	} {
		if a, ok := table.Answer([]byte(q)); !ok || string(a) != want {
			t.Errorf("Answer(%q) = %q, %v; want %q", q, a, ok, want)
		}
	}
	for _, q := range []string{"What is your name", "what is your name?", "What is the capital of Assyria?", ""} {
		if a, ok := table.Answer([]byte(q)); ok {
			t.Errorf("Answer(%q) = %q, want unknown", q, a)
		}
	}
}

func TestNewTableRejects(t *testing.T) {
	for _, m := range []map[string]string{
		{},
		{"Who?": "No"},
		{"Who": "Me."},
		{" Who?": "Me."},
		{"Who? Me?": "Me."},
		{"Who?": "Me. You."},
		{"Wh\xc3\xa9?": "Me."},
		{"Who\x00?": "Me."},
		{"Who?": "M\x07e."},
	} {
		if _, err := protocol.NewTable(m); err == nil {
			t.Errorf("NewTable(%q) succeeded, want an error", m)
		}
	}
}

// FuzzNext feeds arbitrary bytes through the framing loop a worker runs and
// checks it never panics, never consumes what it did not see, and never asks
// the caller to hold more than max+1 bytes.
func FuzzNext(f *testing.F) {
	f.Add([]byte("What is your name?What is your quest?"), 16)
	f.Add([]byte("  \r\n?\xff"), 4)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		if max <= 0 || max > 4096 {
			max = 1 + (max&0x7fffffff)%4096
		}
		buf := data
		for {
			q, n, err := protocol.Next(buf, max)
			if n < 0 || n > len(buf) {
				t.Fatalf("consumed %d of %d bytes", n, len(buf))
			}
			if q != nil && (q[len(q)-1] != '?' || len(q) > max+1 || !bytes.Contains(buf[:n], q)) {
				t.Fatalf("bad question %q (max %d)", q, max)
			}
			if q != nil && bytes.ContainsFunc(q, func(r rune) bool { return r == 0 || r > '~' }) {
				t.Fatalf("question %q holds a byte no question may hold", q)
			}
			buf = buf[n:]
			if err != nil || q == nil {
				if err == nil && len(buf) > max {
					t.Fatalf("asked to hold %d bytes with max %d", len(buf), max)
				}
				return
			}
		}
	})
}
