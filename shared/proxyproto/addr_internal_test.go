package proxyproto

import (
	"net/netip"
	"testing"
)

// ipv6Literals are IPv6 literals, good and bad, for checking parseIPv6
// against netip.ParseAddr.
func ipv6Literals() []string {
	return []string{
		"::", "::1", "1::", "1::2", "2001:db8::1", "2001:DB8:0:0:0:0:0:1", "1:2:3:4:5:6:7:8",
		"::ffff:1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "::1.2.3.4", "1::1.2.3.4", "0000:0000::ffff",
		":", ":::", "1:::2", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::8", "1:2:3:4:5:6:7:8::",
		"12345::", "1:", ":1", "1:2:3:4:5:6:7", "::ffff:01.2.3.4", "::ffff:1.2.3", "1:2:3:4:5:6:7:1.2.3.4",
		"1.2.3.4", "::1.2.3.4.5", "g::", "fe80::1%eth0", "", "1:2:3:4:5:6:7:8:", "::1.2.3.256",
	}
}

// checkIPv6 checks parseIPv6(s) against netip.ParseAddr, which accepts IPv4
// and zones that a TCP6 line must not carry.
func checkIPv6(t *testing.T, s string) {
	t.Helper()
	got, ok := parseIPv6([]byte(s))
	want, err := netip.ParseAddr(s)
	wantOK := err == nil && want.Is6() && want.Zone() == ""
	if ok != wantOK || ok && got != want {
		t.Errorf("parseIPv6(%q) = %v, %v; netip.ParseAddr gives %v, %v", s, got, ok, want, err)
	}
	if ok && !isIPv6Prefix([]byte(s)) {
		t.Errorf("isIPv6Prefix(%q) = false for a valid address", s)
	}
}

func TestParseIPv6(t *testing.T) {
	for _, s := range ipv6Literals() {
		checkIPv6(t, s)
	}
}

func TestParseIPv4(t *testing.T) {
	for _, s := range []string{
		"1.2.3.4", "0.0.0.0", "255.255.255.255", "01.2.3.4", "1.2.3", "1.2.3.4.5", "1..2.3",
		".1.2.3", "1.2.3.", "256.1.1.1", "1.2.3.4a", "", "::1", "1.2.3.00",
	} {
		got, ok := parseIPv4([]byte(s), false)
		want, err := netip.ParseAddr(s)
		wantOK := err == nil && want.Is4()
		if ok != wantOK || ok && netip.AddrFrom4(got) != want {
			t.Errorf("parseIPv4(%q) = %v, %v; netip.ParseAddr gives %v, %v", s, got, ok, want, err)
		}
	}
}

// FuzzIPv6 checks the hand-written IPv6 parser against netip.
func FuzzIPv6(f *testing.F) {
	for _, s := range ipv6Literals() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkIPv6(t, s)
	})
}
