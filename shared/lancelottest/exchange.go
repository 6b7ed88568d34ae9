package lancelottest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// The helpers here report rather than fail, so that any goroutine may call
// them, except DialConn, which a test calls from its own.

// DialConn connects to addr, failing the test if it cannot within 5 s; the
// connection is closed when the test ends.
func DialConn(t testing.TB, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// DialSource connects to addr from the local address src (127.0.0.x).
func DialSource(addr, src string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return d.Dial("tcp", addr)
}

// AskOnce connects to addr, sends q and reads one answer (up to '.'), all
// within timeout, then closes the connection.
func AskOnce(addr, q string, timeout time.Duration) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte(q)); err != nil {
		return "", err
	}
	return bufio.NewReader(conn).ReadString('.')
}

// AskFrom is AskOnce from the local address src; it also returns how long
// the exchange took, the dial included.
func AskFrom(addr, src, q string, timeout time.Duration) (string, time.Duration, error) {
	start := time.Now()
	conn, err := DialSource(addr, src, timeout)
	if err != nil {
		return "", 0, err
	}
	defer conn.Close()
	a, err := AskOn(conn, q)
	return a, time.Since(start), err
}

// AskOn sends q on conn and reads one answer (up to '.') within 5 s. It
// reads byte by byte, so nothing after the answer is consumed and conn can
// be handed on.
func AskOn(conn net.Conn, q string) (string, error) {
	conn.SetDeadline(time.Now().Add(ioTimeout))
	defer conn.SetDeadline(time.Time{})
	if _, err := conn.Write([]byte(q)); err != nil {
		return "", err
	}
	var answer []byte
	b := make([]byte, 1)
	for {
		if _, err := conn.Read(b); err != nil {
			return string(answer), err
		}
		answer = append(answer, b[0])
		if b[0] == '.' {
			return string(answer), nil
		}
	}
}

// ReadUntilClosed waits up to timeout for the server to close conn (EOF or
// reset) without sending anything.
func ReadUntilClosed(conn net.Conn, timeout time.Duration) error {
	conn.SetReadDeadline(time.Now().Add(timeout))
	b, err := io.ReadAll(conn)
	if len(b) > 0 {
		return fmt.Errorf("read %q before the close", b)
	}
	if err != nil && !IsReset(err) {
		return err
	}
	return nil
}

// IsReset reports whether err is a connection reset by the peer: a server
// that closes with unread input resets, which is a close all the same.
func IsReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET)
}
