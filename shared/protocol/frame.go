package protocol

import (
	"bytes"
	"errors"
)

// DefaultMaxQuestionBytes is the longest run of question bytes accepted
// without a '?' when the caller passes a limit of zero or less.
const DefaultMaxQuestionBytes = 1024

// ErrTooLong reports more than the limit of question bytes without a '?'.
var ErrTooLong = errors.New("question too long")

// ErrNotASCII reports a byte no question can hold: above 0x7e, or a
// control byte other than tab, CR and LF (a NUL, a PROXY v2 signature sent
// to a server that expects none). The connection need not wait for the
// '?', nor for the read timeout.
var ErrNotASCII = errors.New("question is not printable ASCII")

// Next finds the first complete question in buf.
//
// It returns:
//   - (q, n, nil) with q the question including its '?' (a sub-slice of buf)
//     and n the bytes of buf consumed, leading whitespace included;
//   - (nil, n, nil) when no question is complete yet: the caller may drop the
//     first n bytes (whitespace) and must keep the rest until more arrive;
//   - (nil, n, ErrTooLong or ErrNotASCII) when the connection must be closed.
//
// max bounds the question bytes held before a '?' arrives, so the caller
// never needs a buffer larger than max+1 bytes after whitespace.
func Next(buf []byte, max int) (question []byte, consumed int, err error) {
	if max <= 0 {
		max = DefaultMaxQuestionBytes
	}
	start := skipSpace(buf)
	rest := buf[start:]
	end := bytes.IndexByte(rest, '?')
	scan := rest
	if end >= 0 {
		scan = rest[:end]
	}
	if end < 0 && len(rest) > max || end > max {
		return nil, start, ErrTooLong
	}
	if !isText(scan) {
		return nil, start, ErrNotASCII
	}
	if end < 0 {
		return nil, start, nil
	}
	return rest[:end+1], start + end + 1, nil
}

// IsSpace reports whether b is whitespace skipped between questions.
func IsSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\r' || b == '\n'
}

func skipSpace(buf []byte) int {
	i := 0
	for i < len(buf) && IsSpace(buf[i]) {
		i++
	}
	return i
}

// isText reports whether b holds only bytes a question may hold:
// printable ASCII, tab, CR and LF.
func isText(b []byte) bool {
	for _, c := range b {
		if c > '~' || c < ' ' && !IsSpace(c) {
			return false
		}
	}
	return true
}
