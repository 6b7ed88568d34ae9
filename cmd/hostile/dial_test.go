package main

import (
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/camelot/lancelot/cmd/internal/loadgen"
)

// TestKindOf checks hostile's own kinds, and that the rest are loadgen's.
func TestKindOf(t *testing.T) {
	for want, err := range map[string]error{
		"ok":           nil,
		"no_port":      &net.OpError{Op: "dial", Net: "tcp", Err: syscall.EADDRNOTAVAIL},
		"no_fd":        syscall.EMFILE,
		"closed":       net.ErrClosed,
		"wrong_answer": fmt.Errorf("byte 3: %w", loadgen.ErrWrongAnswer),
		"reset":        &net.OpError{Op: "write", Net: "tcp", Err: syscall.EPIPE},
	} {
		if got := kindOf(err); got != want {
			t.Errorf("kindOf(%v) = %q, want %q", err, got, want)
		}
	}
}
