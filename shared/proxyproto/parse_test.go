package proxyproto_test

import (
	"errors"
	"testing"

	"github.com/camelot/lancelot/shared/proxyproto"
)

// first is the client's first data after the header.
const first = "What is your name?"

func TestParseValid(t *testing.T) {
	for _, tc := range validCases() {
		b := []byte(tc.in)
		for _, mode := range []proxyproto.Mode{tc.mode, proxyproto.Auto} {
			h, n, err := proxyproto.Parse(b, mode)
			if err != nil || h != tc.want || n != len(b) {
				t.Errorf("%s: Parse(%q, %v) = %+v, %d, %v; want %+v, %d, nil",
					tc.name, b, mode, h, n, err, tc.want, len(b))
				continue
			}
			checkSplits(t, b, mode, h, n, err)
			withData := []byte(tc.in + first)
			h, n, err = proxyproto.Parse(withData, mode)
			if err != nil || h != tc.want || string(withData[n:]) != first {
				t.Errorf("%s: Parse(%q, %v) = %+v, %d, %v; want %+v, %d, nil",
					tc.name, withData, mode, h, n, err, tc.want, len(b))
			}
		}
	}
}

// TestParseByteByByte feeds each header as an event loop would see it on a
// connection that delivers one byte per read.
func TestParseByteByByte(t *testing.T) {
	for _, tc := range validCases() {
		var buf []byte
		for i := range len(tc.in) {
			buf = append(buf, tc.in[i])
			h, n, err := proxyproto.Parse(buf, proxyproto.Auto)
			if i < len(tc.in)-1 && !errors.Is(err, proxyproto.ErrIncomplete) {
				t.Errorf("%s: Parse(%q) after %d bytes = %+v, %d, %v; want ErrIncomplete",
					tc.name, buf, i+1, h, n, err)
				break
			}
			if i == len(tc.in)-1 && (err != nil || h != tc.want || n != len(tc.in)) {
				t.Errorf("%s: Parse(%q) = %+v, %d, %v; want %+v, %d, nil",
					tc.name, buf, h, n, err, tc.want, len(tc.in))
			}
		}
	}
}

func TestParseIncomplete(t *testing.T) {
	for _, tc := range incompleteCases() {
		h, n, err := proxyproto.Parse([]byte(tc.in), tc.mode)
		if !errors.Is(err, proxyproto.ErrIncomplete) || n != 0 || h != (proxyproto.Header{}) {
			t.Errorf("Parse(%q, %v) = %+v, %d, %v; want ErrIncomplete", tc.in, tc.mode, h, n, err)
		}
	}
}

func TestParseRefused(t *testing.T) {
	for _, tc := range refusedCases() {
		b := []byte(tc.in)
		h, n, err := proxyproto.Parse(b, tc.mode)
		if reasonOf(err) != tc.reason || n != 0 || h != (proxyproto.Header{}) {
			t.Errorf("Parse(%q, %v) = %+v, %d, %v; want reason %q", b, tc.mode, h, n, err, tc.reason)
			continue
		}
		checkSplits(t, b, tc.mode, h, n, err)
		// Refusal is final: more bytes cannot change it.
		if _, _, err2 := proxyproto.Parse([]byte(tc.in+first), tc.mode); reasonOf(err2) != tc.reason {
			t.Errorf("Parse(%q, %v) = %v; want reason %q", tc.in+first, tc.mode, err2, tc.reason)
		}
	}
}

// TestParseModes checks that a version-specific mode refuses the other
// version by name, and that Off refuses both.
func TestParseModes(t *testing.T) {
	other := map[proxyproto.Mode]proxyproto.Mode{proxyproto.V1: proxyproto.V2, proxyproto.V2: proxyproto.V1}
	for _, tc := range validCases() {
		for _, mode := range []proxyproto.Mode{other[tc.mode], proxyproto.Off, proxyproto.Mode(9)} {
			_, _, err := proxyproto.Parse([]byte(tc.in), mode)
			if reasonOf(err) != proxyproto.ReasonVersion {
				t.Errorf("%s: Parse(%q, %v) error = %v; want reason %q",
					tc.name, tc.in, mode, err, proxyproto.ReasonVersion)
			}
		}
	}
}

// TestParseAllocs checks that the paths taken once per connection (the
// incomplete ones possibly many times) do not allocate.
func TestParseAllocs(t *testing.T) {
	var inputs []string
	for _, tc := range validCases() {
		inputs = append(inputs, tc.in, tc.in+first)
	}
	for _, tc := range incompleteCases() {
		inputs = append(inputs, tc.in)
	}
	for _, in := range inputs {
		b := []byte(in)
		if allocs := testing.AllocsPerRun(100, func() { _, _, _ = proxyproto.Parse(b, proxyproto.Auto) }); allocs != 0 {
			t.Errorf("Parse(%q) allocates %v times; want 0", b, allocs)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	_, _, err := proxyproto.Parse([]byte("PROXY FOO"), proxyproto.Auto)
	const want = "proxyproto: malformed header: unknown v1 protocol"
	if err == nil || err.Error() != want {
		t.Errorf("Parse(%q) error = %v; want %q", "PROXY FOO", err, want)
	}
}

func TestHasSignature(t *testing.T) {
	for _, tc := range []struct {
		in             string
		sig, undecided bool
	}{
		// Whole signatures.
		{"PROXY ", true, false}, {"PROXY TCP4 1.2.3.4", true, false}, {sig2, true, false},
		{sig2 + "\x21\x11", true, false}, {"PROXY FOO", true, false},
		// Not decidable yet.
		{"", false, true}, {"P", false, true}, {"PROXY", false, true}, {"\r", false, true},
		{sig2[:11], false, true},
		// Not a header.
		{"W", false, false}, {"What is your name?", false, false}, {"PROXX", false, false},
		{"PROXY\r\n", false, false}, {"\r\n\r\nX", false, false}, {"\n", false, false},
	} {
		sig, undecided := proxyproto.HasSignature([]byte(tc.in))
		if sig != tc.sig || undecided != tc.undecided {
			t.Errorf("HasSignature(%q) = %v, %v; want %v, %v", tc.in, sig, undecided, tc.sig, tc.undecided)
		}
	}
}
