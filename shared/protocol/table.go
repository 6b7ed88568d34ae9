package protocol

import (
	"fmt"
	"strings"
)

// Table maps each question the server knows to its answer. The zero value
// knows nothing; use DefaultTable or NewTable. A Table is read-only once
// built, so one value is shared by every connection.
type Table struct {
	answers map[string][]byte
}

// DefaultAnswers is the book's table: the three questions asked at the Bridge
// of Death.
func DefaultAnswers() map[string]string {
	return map[string]string{
		"What is your name?":           "My name is Sir Lancelot of Camelot.",
		"What is your quest?":          "To seek the Holy Grail.",
		"What is your favorite color?": "Blue.",
	}
}

// DefaultTable returns the book's table.
func DefaultTable() *Table {
	t, err := NewTable(DefaultAnswers())
	if err != nil {
		panic(err) // the built-in table is valid by construction
	}
	return t
}

// NewTable checks every pair against the framing rules and builds a Table.
// A question must be ASCII, must not start with whitespace and must contain
// exactly one '?', at its end; an answer must be ASCII and contain exactly one '.', at its end, because
// clients frame answers on it.
func NewTable(answers map[string]string) (*Table, error) {
	if len(answers) == 0 {
		return nil, fmt.Errorf("answers: the table is empty")
	}
	t := &Table{answers: make(map[string][]byte, len(answers))}
	bad := ""
	for q, a := range answers {
		if checkPair(q, a) != nil {
			// The first bad question in sorted order, so that the same
			// table always gets the same message; no sort when all are
			// good (a table of 100,000 entries is built by every worker).
			if bad == "" || q < bad {
				bad = q
			}
			continue
		}
		t.answers[q] = []byte(a)
	}
	if bad != "" {
		return nil, fmt.Errorf("answers: %q: %w", bad, checkPair(bad, answers[bad]))
	}
	return t, nil
}

// Answer returns the answer to question q (as returned by Next) and whether
// q is known. The returned slice is shared: do not modify it.
func (t *Table) Answer(q []byte) ([]byte, bool) {
	a, ok := t.answers[string(q)] // the compiler does not allocate for this lookup
	return a, ok
}

func checkPair(q, a string) error {
	switch {
	case q == "" || IsSpace(q[0]):
		return fmt.Errorf("question must not be empty or start with whitespace")
	case strings.IndexByte(q, '?') != len(q)-1:
		return fmt.Errorf("question must contain one '?', at its end")
	case !isText([]byte(q)):
		return fmt.Errorf("question must be printable ASCII")
	case strings.IndexByte(a, '.') != len(a)-1:
		// Clients frame answers on '.', so one in the middle would split it.
		return fmt.Errorf("answer must contain one '.', at its end")
	case !isText([]byte(a)):
		return fmt.Errorf("answer must be printable ASCII")
	}
	return nil
}
