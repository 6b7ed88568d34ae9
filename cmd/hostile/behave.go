package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// behaviour is what one held connection does once connected. It returns
// when the connection ends: the server closed it (the error says how), or
// the attack closed it under it at the end. Side facts (bytes sent,
// responses) go to t.
type behaviour func(c net.Conn, cfg *attackConfig, t *tally) error

// responseTimeout bounds the wait for the metrics response of a
// metrics-idle connection; a connection that gets none is still held.
const responseTimeout = 10 * time.Second

// silentConn never sends a byte.
func silentConn(c net.Conn, _ *attackConfig, t *tally) error {
	return waitClosed(c, t)
}

// trickleConn sends the question one byte per interval, cycling through
// it without ever sending its '?', so that a question is always started
// and never complete.
func trickleConn(c net.Conn, cfg *attackConfig, t *tally) error {
	q := strings.ReplaceAll(cfg.Question, "?", "")
	if q == "" {
		q = "x"
	}
	for i := 0; ; i++ {
		if _, err := c.Write([]byte{q[i%len(q)]}); err != nil {
			return err
		}
		t.add("bytes_sent", 1)
		if err := readFor(c, cfg.Interval, t); err != nil {
			return err
		}
	}
}

// nonReaderConn pipelines the question without end and never reads: once
// the socket buffers are full its writes block, and so do the server's.
func nonReaderConn(c net.Conn, cfg *attackConfig, t *tally) error {
	buf := bytes.Repeat([]byte(cfg.Question), max(1, 16<<10/max(len(cfg.Question), 1)))
	for {
		n, err := c.Write(buf)
		t.add("bytes_sent", int64(n))
		if err != nil {
			return err
		}
	}
}

// nulConn sends NUL bytes only, then waits for the server to give up.
func nulConn(c net.Conn, cfg *attackConfig, t *tally) error {
	n, err := c.Write(make([]byte, cfg.Payload))
	t.add("bytes_sent", int64(n))
	if err != nil {
		return err
	}
	return waitClosed(c, t)
}

// proxyV2Conn sends the start of the header a proxy speaking PROXY
// protocol v2 would send first, to a server that does not expect one.
func proxyV2Conn(c net.Conn, cfg *attackConfig, t *tally) error {
	h := proxyV2Header(c.LocalAddr(), c.RemoteAddr(), cfg.Addresses)
	n, err := c.Write(h)
	t.add("bytes_sent", int64(n))
	if err != nil {
		return err
	}
	return waitClosed(c, t)
}

// proxyV2Header is a PROXY v2 header (haproxy's proxy-protocol.txt,
// section 2.2): the 12-byte signature, version 2 command PROXY, TCP over
// IPv4 and the length 12, then, with addresses, those 12 bytes (source and
// destination address and port). Without them every byte is below 0x80,
// so a server that rejects non-ASCII input cannot tell it from a slow
// question; the ports may not be.
func proxyV2Header(src, dst net.Addr, addresses bool) []byte {
	h := []byte("\r\n\r\n\x00\r\nQUIT\n")
	h = append(h, 0x21, 0x11, 0x00, 12)
	if !addresses {
		return h
	}
	s, d := tcp4(src), tcp4(dst)
	h = append(h, s.IP.To4()...)
	h = append(h, d.IP.To4()...)
	h = binary.BigEndian.AppendUint16(h, uint16(s.Port))
	return binary.BigEndian.AppendUint16(h, uint16(d.Port))
}

// tcp4 is addr as a TCP IPv4 address (127.0.0.1:0 if it is not one).
func tcp4(addr net.Addr) *net.TCPAddr {
	if a, ok := addr.(*net.TCPAddr); ok && a.IP.To4() != nil {
		return a
	}
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}
}

// metricsIdleConn asks GET /metrics once (variant get) and then stays
// open and silent, as an idle HTTP keep-alive client does; variant silent
// never sends a byte at all.
func metricsIdleConn(c net.Conn, cfg *attackConfig, t *tally) error {
	if cfg.Variant == "silent" {
		return waitClosed(c, t)
	}
	if _, err := fmt.Fprintf(c, "GET /metrics HTTP/1.1\r\nHost: %s\r\n\r\n", cfg.Server); err != nil {
		return err
	}
	if err := readResponse(c, t); err != nil {
		return err
	}
	return waitClosed(c, t)
}

// readResponse reads one HTTP response within responseTimeout. No
// response in time is counted, not an error: the connection is still held
// (queued, say, on a server out of descriptors).
func readResponse(c net.Conn, t *tally) error {
	c.SetReadDeadline(time.Now().Add(responseTimeout))
	defer c.SetReadDeadline(time.Time{})
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.add("no_response", 1)
		return nil
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	t.add(fmt.Sprintf("responses_%d", resp.StatusCode), 1)
	return nil
}

// bigHeaderConn sends a request whose header grows by cfg.Chunk bytes
// every cfg.ChunkEvery up to cfg.HeaderBytes, never ending it, then holds
// the connection: the server must buffer all of it while it waits.
func bigHeaderConn(c net.Conn, cfg *attackConfig, t *tally) error {
	head := fmt.Sprintf("GET /metrics HTTP/1.1\r\nHost: %s\r\nX-Pad: ", cfg.Server)
	if _, err := io.WriteString(c, head); err != nil {
		return err
	}
	var pad [4096]byte
	for i := range pad {
		pad[i] = 'a'
	}
	for left := cfg.HeaderBytes - len(head); left > 0; {
		n := min(left, cfg.Chunk)
		if err := writeRepeated(c, pad[:], n, t); err != nil {
			return err
		}
		left -= n
		if err := readFor(c, cfg.ChunkEvery, t); err != nil {
			return err
		}
	}
	return waitClosed(c, t)
}

// writeRepeated writes n bytes of buf, repeated.
func writeRepeated(c net.Conn, buf []byte, n int, t *tally) error {
	for n > 0 {
		w, err := c.Write(buf[:min(n, len(buf))])
		t.add("bytes_sent", int64(w))
		if err != nil {
			return err
		}
		n -= w
	}
	return nil
}

// waitClosed reads (and counts) whatever the server sends until the
// connection ends.
func waitClosed(c net.Conn, t *tally) error {
	var buf [512]byte
	for {
		n, err := c.Read(buf[:])
		if n > 0 {
			t.add("bytes_received", int64(n))
		}
		if err != nil {
			return err
		}
	}
}

// readFor waits d for the server to close c: nil if it is still open
// after d, else why it ended. Bytes received meanwhile are counted.
func readFor(c net.Conn, d time.Duration, t *tally) error {
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	err := waitClosed(c, t)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	return err
}
