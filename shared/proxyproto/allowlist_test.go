package proxyproto_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/camelot/lancelot/shared/proxyproto"
)

func TestParseAllowList(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"10.0.0.0/8,127.0.0.1", "10.0.0.0/8,127.0.0.1/32"},
		{" 10.0.0.0/8 , 127.0.0.1 ", "10.0.0.0/8,127.0.0.1/32"},
		{"::1", "::1/128"},
		{"2001:db8::/32,192.168.1.7/24", "2001:db8::/32,192.168.1.0/24"},
		{"::ffff:10.0.0.0/104", "::ffff:10.0.0.0/104"},
	} {
		a, err := proxyproto.ParseAllowList(tc.in)
		if err != nil || a.String() != tc.want || a.Empty() {
			t.Errorf("ParseAllowList(%q) = %q (empty %v), %v; want %q", tc.in, a, a.Empty(), err, tc.want)
		}
	}
}

func TestParseAllowListErrors(t *testing.T) {
	for _, tc := range []struct {
		in, item string
	}{
		{"", ""}, {"  ", ""}, {"10.0.0.0/8,", `""`}, {"10.0.0.0/33", `"10.0.0.0/33"`},
		{"10.0.0.0/8,example.com", `"example.com"`}, {"fe80::1%eth0", `"fe80::1%eth0"`},
		{"1.2.3.4/8/8", `"1.2.3.4/8/8"`}, {"01.2.3.4", `"01.2.3.4"`},
	} {
		_, err := proxyproto.ParseAllowList(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.item) {
			t.Errorf("ParseAllowList(%q) error = %v; want one naming %s", tc.in, err, tc.item)
		}
	}
}

func TestAllowListContains(t *testing.T) {
	a, err := proxyproto.ParseAllowList("10.0.0.0/8, 127.0.0.1, 2001:db8::/32, ::ffff:192.168.0.0/112")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"10.1.2.3", true}, {"11.0.0.1", false}, {"127.0.0.1", true}, {"127.0.0.2", false},
		{"::ffff:10.1.2.3", true}, {"::ffff:127.0.0.1", true}, {"::ffff:11.0.0.1", false},
		{"2001:db8::1", true}, {"2001:db9::1", false}, {"fe80::1%eth0", false},
		{"192.168.3.4", true}, {"::ffff:192.168.3.4", true}, {"192.169.0.1", false},
	} {
		if got := a.Contains(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("AllowList(%s).Contains(%s) = %v; want %v", a, tc.addr, got, tc.want)
		}
	}
	if a.Contains(netip.Addr{}) {
		t.Errorf("AllowList(%s).Contains(invalid address) = true; want false", a)
	}
}

func TestAllowListZero(t *testing.T) {
	var a proxyproto.AllowList
	if !a.Empty() || a.Contains(netip.MustParseAddr("127.0.0.1")) || a.String() != "" {
		t.Errorf("zero AllowList: Empty %v, Contains(127.0.0.1) %v, String %q; want true, false, \"\"",
			a.Empty(), a.Contains(netip.MustParseAddr("127.0.0.1")), a)
	}
}

func TestAllowListZone(t *testing.T) {
	a, err := proxyproto.ParseAllowList("fe80::/10")
	if err != nil {
		t.Fatal(err)
	}
	if !a.Contains(netip.MustParseAddr("fe80::1%eth0")) {
		t.Errorf("AllowList(%s).Contains(fe80::1%%eth0) = false; want true (zone ignored)", a)
	}
}
