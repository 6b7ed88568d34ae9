package proxyproto_test

import (
	"strings"
	"testing"

	"github.com/camelot/lancelot/shared/proxyproto"
)

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want proxyproto.Mode
	}{
		{"off", proxyproto.Off}, {"v1", proxyproto.V1}, {"v2", proxyproto.V2}, {"auto", proxyproto.Auto},
	} {
		m, err := proxyproto.ParseMode(tc.in)
		if err != nil || m != tc.want || m.String() != tc.in {
			t.Errorf("ParseMode(%q) = %v, %v; want %v, nil and String() %q", tc.in, m, err, tc.want, tc.in)
		}
	}
	for _, in := range []string{"", "V1", "on", "v3", " auto"} {
		_, err := proxyproto.ParseMode(in)
		if err == nil || !strings.Contains(err.Error(), "\""+in+"\"") || !strings.Contains(err.Error(), "auto") {
			t.Errorf("ParseMode(%q) error = %v; want one naming %q and the choices", in, err, in)
		}
	}
}

func TestModeStringUnknown(t *testing.T) {
	if got := proxyproto.Mode(7).String(); got != "Mode(7)" {
		t.Errorf("Mode(7).String() = %q; want %q", got, "Mode(7)")
	}
}
