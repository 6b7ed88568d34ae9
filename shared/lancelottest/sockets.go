package lancelottest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"
)

// FreePort returns a port nothing on this host listens on right now, on
// any address. It is drawn below the kernel's ephemeral range, so no
// client's connect can take it meanwhile (a busy test dialling from
// 127.0.0.2 would, sooner or later, from that range). Another test may
// still draw it; tests live with that rather than fix a port.
func FreePort(t testing.TB) int {
	t.Helper()
	low := ephemeralLow()
	for range 100 {
		port := low - 1 - rand.IntN(low/2)
		// ":P" binds [::]:P with IPv6-only off: it fails if any socket,
		// IPv4 or IPv6, on any address, holds the port.
		if ln, err := net.Listen("tcp", fmt.Sprintf(":%d", port)); err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no free port below the ephemeral range after 100 tries")
	return 0
}

// ephemeralLow is the first port the kernel hands to clients.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	var low, high int
	if _, err := fmt.Sscan(string(b), &low, &high); err != nil || low < 4096 {
		return 32768
	}
	return low
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
