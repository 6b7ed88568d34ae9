package loadgen

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
)

// errWrongAnswer marks bytes that differ from the expected answer, or
// bytes the server sent when no answer was due.
var errWrongAnswer = errors.New("wrong answer")

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

// classify maps a connection error to its kind.
func classify(err error) ErrorKind {
	var ne net.Error
	switch {
	case errors.Is(err, errWrongAnswer):
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
