package handoff

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The requests a predecessor passes on (version 3): the operator's HUP,
// TTIN and TTOU that waited for the upgrade are the successor's to carry
// out once it serves. They travel on the channel, not as signals: the
// kernel keeps one pending signal of a kind, and so does a Go runtime
// until its handler runs, so two TTINs sent back to back could arrive as
// one, and the worker count would drift from what the operator asked for.
//
// After the successor's "conns", the predecessor writes one line
// "request NAME" per request, in the order they came, then "done", and
// the successor closes the channel.

// Lines of the requests.
const (
	lineRequest = "request"
	lineDone    = "done"
)

// maxRequests bounds the requests a successor reads: a predecessor that is
// not lancelot must not make it read without end. A real one cannot queue
// that many: signals of a kind merge while the supervisor is busy.
const maxRequests = 4096

// isRequest reports whether sig is one of the requests that travel.
func isRequest(sig syscall.Signal) bool {
	return sig == syscall.SIGHUP || sig == syscall.SIGTTIN || sig == syscall.SIGTTOU
}

// requestName is sig by the name operators type (TTIN), as the log and
// status name it.
func requestName(sig syscall.Signal) string {
	return strings.TrimPrefix(unix.SignalName(sig), "SIG")
}

// WriteRequests is the predecessor's last word: sigs (HUP, TTIN or TTOU),
// in order, then "done", in one write.
func WriteRequests(w io.Writer, sigs []syscall.Signal) error {
	if len(sigs) > maxRequests {
		return fmt.Errorf("pass on requests: %d, at most %d", len(sigs), maxRequests)
	}
	var b strings.Builder
	for _, sig := range sigs {
		if !isRequest(sig) {
			return fmt.Errorf("pass on requests: %v is not a request", sig)
		}
		b.WriteString(formatLine(lineRequest, requestName(sig)))
	}
	b.WriteString(formatLine(lineDone))
	_, err := io.WriteString(w, b.String())
	return err
}

// errNoRequests is the channel closing, or TimeoutRequests passing, before
// the predecessor said "done": it died or hangs, and whatever requests
// were waiting in it are lost.
var errNoRequests = errors.New("the old supervisor did not pass on its waiting requests")

// Requests reads, after Serving, the requests the predecessor passes on,
// in order, and closes the channel. A version without them passes none.
func (u *Upgrade) Requests() ([]syscall.Signal, error) {
	defer u.Channel.Close()
	if !Can(u.Protocol).Requests {
		return nil, nil
	}
	u.Channel.SetReadDeadline(time.Now().Add(TimeoutRequests))
	return readRequests(bufio.NewReaderSize(u.Channel, maxLine))
}

// readRequests reads "request NAME" lines until "done".
func readRequests(br *bufio.Reader) ([]syscall.Signal, error) {
	var sigs []syscall.Signal
	for len(sigs) <= maxRequests {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return sigs, fmt.Errorf("%w (%d read): %v", errNoRequests, len(sigs), err)
		}
		word, name, _ := strings.Cut(strings.TrimSuffix(string(line), "\n"), " ")
		sig := unix.SignalNum("SIG" + name)
		switch {
		case word == lineDone && name == "":
			return sigs, nil
		case word == lineRequest && isRequest(sig):
			sigs = append(sigs, sig)
		default:
			return sigs, fmt.Errorf("handoff channel: unexpected %q from the old supervisor", line)
		}
	}
	return sigs, fmt.Errorf("handoff channel: more than %d requests from the old supervisor", maxRequests)
}
