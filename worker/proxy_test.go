package worker_test

// The PROXY protocol, as the event loop speaks it: a trusted peer (here
// 127.0.0.2) sends a header first; anyone else is served plainly, and
// closed if it sends a header.

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/camelot/lancelot/shared/control"
	"github.com/camelot/lancelot/shared/lancelottest"
	"github.com/camelot/lancelot/shared/proxyproto"
	"github.com/camelot/lancelot/worker"
)

const (
	trusted   = "127.0.0.2"
	untrusted = "127.0.0.3"
	v1Header  = "PROXY TCP4 192.0.2.1 198.51.100.1 56324 1060\r\n"
)

// v2Header builds a binary header: PROXY over TCP/IPv4 from src, or LOCAL
// when src is zero; tlv extra bytes follow the addresses.
func v2Header(src netip.AddrPort, tlv int) []byte {
	var b bytes.Buffer
	b.WriteString("\r\n\r\n\x00\r\nQUIT\n")
	if !src.IsValid() {
		b.Write([]byte{0x20, 0x00, 0, 0})
		return b.Bytes()
	}
	b.Write([]byte{0x21, 0x11})
	binary.Write(&b, binary.BigEndian, uint16(12+tlv))
	b.Write(src.Addr().AsSlice())
	b.Write([]byte{198, 51, 100, 1})
	binary.Write(&b, binary.BigEndian, src.Port())
	binary.Write(&b, binary.BigEndian, uint16(1060))
	b.Write(make([]byte, tlv))
	return b.Bytes()
}

func startProxyEngine(t *testing.T, loops int, mode proxyproto.Mode, o worker.Options) *testEngine {
	t.Helper()
	allow, err := proxyproto.ParseAllowList(trusted)
	if err != nil {
		t.Fatal(err)
	}
	o.Proxy, o.ProxyAllow = mode, allow
	return startEngine(t, loops, o)
}

// TestProxyHeaderAccepted: a valid header, whole or split byte by byte,
// with the first question in the same write or after; the question is
// answered.
func TestProxyHeaderAccepted(t *testing.T) {
	t.Parallel()
	client := netip.MustParseAddrPort("192.0.2.1:56324")
	for _, tc := range []struct {
		name   string
		mode   proxyproto.Mode
		header string
	}{
		{"v1", proxyproto.V1, v1Header},
		{"v1 unknown", proxyproto.V1, "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"},
		{"v1 tcp6", proxyproto.V1, "PROXY TCP6 2001:db8::1 2001:db8::2 56324 1060\r\n"},
		{"v2", proxyproto.V2, string(v2Header(client, 0))},
		{"v2 with TLVs", proxyproto.V2, string(v2Header(client, 40))},
		{"v2 local", proxyproto.V2, string(v2Header(netip.AddrPort{}, 0))},
		{"auto v1", proxyproto.Auto, v1Header},
		{"auto v2", proxyproto.Auto, string(v2Header(client, 0))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			forEachLoopCount(t, func(t *testing.T, loops int) {
				s := startProxyEngine(t, loops, tc.mode, worker.Options{})
				whole := lancelottest.DialFrom(t, s.addr, trusted)
				whole.Ask(tc.header+lancelottest.QName, lancelottest.AName)
				split := lancelottest.DialFrom(t, s.addr, trusted)
				for i := range len(tc.header) {
					split.Send(tc.header[i : i+1])
					time.Sleep(time.Millisecond) // separate reads, to exercise the partial paths
				}
				split.Ask(lancelottest.QQuest, lancelottest.AQuest)
				split.Ask(lancelottest.QColor, lancelottest.AColor)
			})
		})
	}
}

// TestProxyHeaderRefused: every way a header goes wrong closes the
// connection at once and is counted by reason.
func TestProxyHeaderRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		mode   proxyproto.Mode
		from   string
		input  string
		reason string
	}{
		{"trusted without header", proxyproto.V1, trusted, lancelottest.QName, proxyproto.ReasonMissing},
		{"garbage", proxyproto.Auto, trusted, "\x01\x02\x03", proxyproto.ReasonMissing},
		{"bad address", proxyproto.V1, trusted, "PROXY TCP4 999.0.2.1 198.51.100.1 1 2\r\n", proxyproto.ReasonMalformed},
		{"overlong v1", proxyproto.V1, trusted, "PROXY UNKNOWN " + strings.Repeat("x", 100), proxyproto.ReasonTooLong},
		{"v2 over the length cap", proxyproto.V2, trusted, "\r\n\r\n\x00\r\nQUIT\n\x21\x11\x08\x01", proxyproto.ReasonTooLong},
		{"v2 to a v1 server", proxyproto.V1, trusted, string(v2Header(netip.MustParseAddrPort("192.0.2.1:1"), 0)), proxyproto.ReasonVersion},
		{"v1 from an untrusted peer", proxyproto.Auto, untrusted, v1Header + lancelottest.QName, proxyproto.ReasonUntrusted},
		{"v2 from an untrusted peer", proxyproto.Auto, untrusted, string(v2Header(netip.MustParseAddrPort("192.0.2.1:1"), 0)), proxyproto.ReasonUntrusted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startProxyEngine(t, 0, tc.mode, worker.Options{})
			c := lancelottest.DialFrom(t, s.addr, tc.from)
			c.Send(tc.input)
			c.ExpectClosed(5 * time.Second)
			s.waitStatsFunc(tc.reason, func(st control.Stats) bool {
				return st.ProxyErrors[tc.reason] == 1 && st.Closed["proxy"] == 1
			})
		})
	}
}

// TestProxyUntrustedServedPlainly: with the protocol on, a peer outside
// the allow list is an ordinary client, nc users' Enter included.
func TestProxyUntrustedServedPlainly(t *testing.T) {
	t.Parallel()
	s := startProxyEngine(t, 0, proxyproto.Auto, worker.Options{})
	c := lancelottest.DialFrom(t, s.addr, untrusted)
	c.Send("\r\n")
	time.Sleep(10 * time.Millisecond) // a read of its own: a prefix of the v2 signature
	c.Ask(lancelottest.QName+"\n"+lancelottest.QQuest, lancelottest.AName+lancelottest.AQuest)
	p := lancelottest.DialFrom(t, s.addr, untrusted)
	p.Send("PROXY?") // not a signature
	p.ExpectClosed(5 * time.Second)
	s.waitStatsFunc("an unknown question, no PROXY error", func(st control.Stats) bool {
		return st.Unknown == 1 && len(st.ProxyErrors) == 0
	})
}

// TestProxyHeaderTimeout: a trusted peer must complete its header within
// the read timeout.
func TestProxyHeaderTimeout(t *testing.T) {
	t.Parallel()
	s := startProxyEngine(t, 0, proxyproto.V1, worker.Options{ReadTimeout: 200 * time.Millisecond})
	c := lancelottest.DialFrom(t, s.addr, trusted)
	c.Send("PROXY TCP4 192.0.2.1")
	c.ExpectClosed(5 * time.Second)
	s.waitStatsFunc("a header timeout", func(st control.Stats) bool { return st.ProxyErrors[proxyproto.ReasonTimeout] == 1 })
}

// TestProxyClientInLog: log lines name the client the header gave, and the
// peer it came through.
func TestProxyClientInLog(t *testing.T) {
	t.Parallel()
	var buf lancelottest.SyncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := startProxyEngine(t, 0, proxyproto.V1, worker.Options{Logger: log})
	c := lancelottest.DialFrom(t, s.addr, trusted)
	c.Ask(v1Header+lancelottest.QName+"Who?", lancelottest.AName)
	c.ExpectClosed(5 * time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), "closing connection: unknown") && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := buf.String(); !strings.Contains(got, "client=192.0.2.1:56324 peer=127.0.0.2:") {
		t.Errorf("log %q: want client=192.0.2.1:56324 and the peer 127.0.0.2", got)
	}
}

// TestProxySourceCap: behind a balancer, connections count against the
// client the header names, not the balancer.
func TestProxySourceCap(t *testing.T) {
	t.Parallel()
	s := startProxyEngine(t, 0, proxyproto.V1, worker.Options{MaxConnectionsPerSource: 1})
	a := lancelottest.DialFrom(t, s.addr, trusted)
	a.Ask(v1Header+lancelottest.QName, lancelottest.AName)
	b := lancelottest.DialFrom(t, s.addr, trusted)
	b.Ask("PROXY TCP4 192.0.2.2 198.51.100.1 1 1060\r\n"+lancelottest.QName, lancelottest.AName)
	again := lancelottest.DialFrom(t, s.addr, trusted)
	again.Send(v1Header + lancelottest.QName)
	again.ExpectClosed(5 * time.Second)
	s.waitStatsFunc("one limit", func(st control.Stats) bool { return st.Closed["limit"] == 1 })
}
