package loadgen

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// errStopped ends a session because the load is stopping; it is never
// counted.
var errStopped = errors.New("load stopped")

// drainTimeout bounds how long a stopping session waits for the answers it
// already asked for. Closing with answers still unread would send an RST,
// which counts as an error at the server, and kills the book's server.
const drainTimeout = 250 * time.Millisecond

// session is one client connection asking questions in order and checking
// each answer byte for byte as it arrives.
type session struct {
	conn    net.Conn
	sc      *script
	timeout time.Duration
	first   int         // number of the first question
	next    int         // number of the next question to send
	head    int         // number of the oldest unanswered question
	matched int         // bytes of head's answer received so far
	sent    []time.Time // send time of question i at sent[i%len(sent)]
	buf     []byte
	now     time.Time // time of the last send or read

	mu       sync.Mutex // orders stop against deadline refreshes
	stopped  bool       // deadline belongs to stop (or detach)
	deadline time.Time
	draining atomic.Bool // ask no more, count no more
	release  func() bool
}

// newSession starts a session whose first question is number start and
// which keeps at most k questions in flight. When ctx is done, the session
// sends no more questions and waits at most drainTimeout for the answers
// in flight, which it checks but does not count.
func newSession(ctx context.Context, conn net.Conn, sc *script, k, start int, timeout time.Duration) *session {
	s := &session{conn: conn, sc: sc, timeout: timeout, first: start, next: start, head: start,
		sent: make([]time.Time, k), buf: make([]byte, 512+64*k), now: time.Now()}
	s.release = context.AfterFunc(ctx, s.stop)
	return s
}

// stop starts the drain.
func (s *session) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return // detached
	}
	s.stopped = true
	s.draining.Store(true)
	s.conn.SetDeadline(time.Now().Add(min(drainTimeout, s.timeout)))
}

// close stops watching the context and closes the connection.
func (s *session) close() {
	s.release()
	s.conn.Close()
}

// detach stops watching the context, clears the deadline and hands the
// connection over (idle mode keeps it open).
func (s *session) detach() net.Conn {
	s.release()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	s.conn.SetDeadline(time.Time{})
	return s.conn
}

// refresh keeps the deadline between Timeout and 1.5×Timeout ahead of now,
// resetting it only every Timeout/2: a deadline per exchange would cost a
// timer update per answer.
func (s *session) refresh() error {
	if s.now.Add(s.timeout).Before(s.deadline) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil // draining: keep the drain's deadline
	}
	s.deadline = s.now.Add(s.timeout * 3 / 2)
	return s.conn.SetDeadline(s.deadline)
}

// converse asks questions keeping k in flight until total answers have come
// (total 0: until an error or the stop). record gets each answer's latency.
func (s *session) converse(k, total int, record func(time.Duration)) error {
	asked, answered := 0, 0
	for total == 0 || answered < total {
		if more := s.room(k, total, asked); more > 0 && !s.draining.Load() {
			if err := s.ask(more); err != nil {
				return s.failure(err)
			}
			asked += more
		}
		if s.head == s.next {
			return errStopped // drained: every answer asked for is in
		}
		n, err := s.await(record)
		if err != nil {
			return s.failure(err)
		}
		answered += n
	}
	return nil
}

// failure marks err as coming before the first answer when no answer has
// come on this connection yet.
func (s *session) failure(err error) error {
	if s.head == s.first {
		return unanswered(err)
	}
	return err
}

// room is how many questions may be sent now: what keeps k in flight,
// without asking more than total in all.
func (s *session) room(k, total, asked int) int {
	more := k - (s.next - s.head)
	if total > 0 {
		more = min(more, total-asked)
	}
	return more
}

// ask sends the next n questions in one write.
func (s *session) ask(n int) error {
	if err := s.refresh(); err != nil {
		return err
	}
	if _, err := s.conn.Write(s.sc.questions(s.next, n)); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		s.sent[(s.next+i)%len(s.sent)] = s.now
	}
	s.next += n
	return nil
}

// await reads once and checks what came; it returns the answers completed.
func (s *session) await(record func(time.Duration)) (int, error) {
	if err := s.refresh(); err != nil {
		return 0, err
	}
	n, err := s.conn.Read(s.buf)
	s.now = time.Now()
	done, bad := s.consume(s.buf[:n], record)
	if bad != nil {
		return done, bad
	}
	return done, err // io.EOF too: only called with answers due
}

// consume matches data against the expected answers, in order.
func (s *session) consume(data []byte, record func(time.Duration)) (int, error) {
	done := 0
	for len(data) > 0 {
		if s.head == s.next {
			return done, ErrWrongAnswer // bytes when no answer is due
		}
		want := s.sc.answer(s.head)[s.matched:]
		m := min(len(want), len(data))
		if !bytes.Equal(data[:m], want[:m]) {
			return done, ErrWrongAnswer
		}
		s.matched += m
		data = data[m:]
		if s.matched == len(s.sc.answer(s.head)) {
			if !s.draining.Load() {
				record(s.now.Sub(s.sent[s.head%len(s.sent)]))
			}
			s.head++
			s.matched = 0
			done++
		}
	}
	return done, nil
}
