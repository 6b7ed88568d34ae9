package lancelottest

import (
	"net"
	"os"
	"testing"
	"time"
)

// FreePort returns a loopback port nothing listens on right now. Another
// process may take it before the test binds it; tests live with that
// rather than fix a port.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// ListenerFile returns a listening socket on 127.0.0.1 as the supervisor
// passes one to a worker: a file, which the receiver takes over, and its
// address. The file is closed when the test ends, if the receiver has not.
func ListenerFile(t testing.TB) (*os.File, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // the file is a dup: the socket stays open
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, ln.Addr().String()
}

// Poll checks cond until it holds or timeout passes, and reports which,
// polling every millisecond at first and every 50 ms at most.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(delay)
	}
	return true
}

// WaitFor polls cond as Poll does and fails the test, naming what, if it
// does not hold within timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf("timed out after %v waiting for: %s", timeout, what)
	}
}
