package main

import (
	"bytes"
	"net"
	"testing"
)

func TestProxyV2Header(t *testing.T) {
	src := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 0x1234}
	dst := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1060}
	sig := []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c")
	if got := proxyV2Header(src, dst, false); !bytes.Equal(got, sig) {
		t.Errorf("proxyV2Header without addresses = %q, want %q", got, sig)
	}
	want := append(append([]byte{}, sig...), 127, 0, 0, 2, 127, 0, 0, 1, 0x12, 0x34, 0x04, 0x24)
	if got := proxyV2Header(src, dst, true); !bytes.Equal(got, want) {
		t.Errorf("proxyV2Header with addresses = %q, want %q", got, want)
	}
}
