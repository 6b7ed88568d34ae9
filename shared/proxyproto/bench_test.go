package proxyproto_test

import (
	"testing"

	"github.com/camelot/lancelot/shared/proxyproto"
)

// benchParse measures Parse on a header followed by the first question, as
// the event loop sees it when both arrive in one read.
func benchParse(b *testing.B, header string) {
	buf := []byte(header + first)
	b.ReportAllocs()
	b.SetBytes(int64(len(header)))
	for b.Loop() {
		if _, _, err := proxyproto.Parse(buf, proxyproto.Auto); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseV2INET(b *testing.B) {
	benchParse(b, v2(1, 0x11, block("192.168.0.1:56324", "192.168.0.11:443")))
}

func BenchmarkParseV1TCP4(b *testing.B) {
	benchParse(b, "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n")
}
