package lancelottest

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Flood writes q over and over, pipelined, to conn until a write fails or
// limit passes, and never reads: a client that leaves its answers unread.
// The write error arrives on the channel.
func Flood(conn net.Conn, q string, limit time.Duration) <-chan error {
	errc := make(chan error, 1)
	go func() {
		chunk := []byte(strings.Repeat(q, 1000))
		conn.SetWriteDeadline(time.Now().Add(limit))
		for {
			if _, err := conn.Write(chunk); err != nil {
				errc <- err
				return
			}
		}
	}()
	return errc
}

// Trickle writes s to conn one byte at a time, every apart: a slow client.
// It stops at the first write error, which it returns.
func Trickle(conn net.Conn, s string, every time.Duration) error {
	for _, b := range []byte(s) {
		if _, err := conn.Write([]byte{b}); err != nil {
			return err
		}
		time.Sleep(every) // the slow client's pace, not a wait for a condition
	}
	return nil
}

// ExpectCut waits for the write error of Flood's client on errc, which
// must say the server cut the client (a reset or a broken pipe). Past
// within it closes conn and fails the test.
func ExpectCut(t testing.TB, conn net.Conn, errc <-chan error, within time.Duration) {
	t.Helper()
	start := time.Now()
	select {
	case err := <-errc:
		if !IsReset(err) && !errors.Is(err, syscall.EPIPE) {
			t.Errorf("never-reading client: write error %v after %v, want a reset by the server", err, time.Since(start))
		}
	case <-time.After(within):
		conn.Close()
		<-errc
		t.Fatalf("never-reading client still connected after %v", within)
	}
}
