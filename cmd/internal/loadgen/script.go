package loadgen

import "github.com/camelot/lancelot/shared/protocol"

// bookOrder is the order the book's client asks in; connections cycle
// through it.
var bookOrder = [3]string{"What is your name?", "What is your quest?", "What is your favorite color?"}

// script is what a connection sends and expects: question i (counting from
// any start) is bookOrder[i%3], and its answer is the protocol table's.
type script struct {
	answers [3][]byte
	// stream is the questions repeated so that any run of up to k
	// questions, starting at any of the three, is one slice: one write.
	stream  []byte
	offsets []int // offsets[i]: where question i starts in stream
}

func newScript(k int) *script {
	table := protocol.DefaultAnswers()
	s := &script{}
	for i, q := range bookOrder {
		s.answers[i] = []byte(table[q])
	}
	for i := 0; i < k+3; i++ {
		s.offsets = append(s.offsets, len(s.stream))
		s.stream = append(s.stream, bookOrder[i%3]...)
	}
	s.offsets = append(s.offsets, len(s.stream))
	return s
}

// questions returns the bytes of n questions starting at question i.
func (s *script) questions(i, n int) []byte {
	j := i % 3
	return s.stream[s.offsets[j]:s.offsets[j+n]]
}

// answer returns the answer expected for question i.
func (s *script) answer(i int) []byte {
	return s.answers[i%3]
}
