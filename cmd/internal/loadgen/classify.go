package loadgen

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
)

// ErrWrongAnswer marks bytes that differ from the expected answer, or
// bytes the server sent when no answer was due.
var ErrWrongAnswer = errors.New("wrong answer")

// errUnanswered marks a failure before a connection's first answer, which
// tells a reset of a client still queued on a listening socket (see
// ResetQueued) from one of a client being served.
var errUnanswered = errors.New("before the first answer")

// unanswered marks err as a failure before the connection's first answer.
func unanswered(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", errUnanswered, err)
}

// Classify maps a connection error to its kind; ErrWrongAnswer is
// WrongAnswer.
func Classify(err error) ErrorKind {
	var ne net.Error
	switch {
	case errors.Is(err, ErrWrongAnswer):
		return WrongAnswer
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	// EPIPE too: Linux only fails a write that way after the peer's RST.
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNABORTED):
		if errors.Is(err, errUnanswered) {
			return ResetQueued
		}
		return Reset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return EOF
	case errors.Is(err, syscall.ETIMEDOUT), errors.As(err, &ne) && ne.Timeout():
		return Timeout
	default:
		return Other
	}
}
