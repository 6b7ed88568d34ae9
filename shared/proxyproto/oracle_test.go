package proxyproto_test

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"

	oracle "github.com/pires/go-proxyproto"

	"github.com/camelot/lancelot/shared/proxyproto"
)

// readOracle parses b with github.com/pires/go-proxyproto, which reads from a
// bufio.Reader, and returns its header and the bytes it consumed.
func readOracle(b []byte) (*oracle.Header, int, error) {
	r := bytes.NewReader(b)
	br := bufio.NewReaderSize(r, len(b)+16)
	h, err := oracle.Read(br)
	return h, len(b) - r.Len() - br.Buffered(), err
}

// oracleDiffers reports whether b, for which Parse returned err, is one of
// the inputs on which we disagree with the oracle on purpose, each for the
// reason given below. All are v2: on v1 the oracle is as strict as we are.
func oracleDiffers(b []byte, err error) bool {
	if len(b) < 16 || string(b[:12]) != sig2 {
		return false
	}
	cmd, family := b[12], b[13]
	length := int(b[14])<<8 | int(b[15])
	switch {
	case length > proxyproto.MaxV2Length && err != nil:
		// Our cap is lower than the oracle's 4096 (MaxV2HeaderSize): lancelot
		// needs no TLVs, so it buffers less for a broken balancer.
		return true
	case cmd == 0x21 && reasonOf(err) == proxyproto.ReasonUnsupported:
		// The oracle accepts PROXY over UDP and UNIX (0x12, 0x22, 0x31,
		// 0x32); lancelot serves TCP only.
		return true
	case cmd == 0x20 && !oracleKnowsFamily(family) && err == nil:
		// The oracle refuses LOCAL with a family byte the spec does not
		// define. The spec says a LOCAL receiver must "discard the protocol
		// block including the family which is ignored", so we accept it.
		return true
	}
	return false
}

// oracleKnowsFamily reports whether the oracle accepts a v2 family byte.
func oracleKnowsFamily(family byte) bool {
	switch family {
	case 0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32:
		return true
	}
	return false
}

// compareOracle checks Parse(b, Auto)'s result (h, n, err) against the oracle.
// The oracle sees b as a whole connection, so it must refuse what we find
// incomplete: the stream ends before the header does.
func compareOracle(t *testing.T, b []byte, h proxyproto.Header, n int, err error) {
	t.Helper()
	oh, on, oerr := readOracle(b)
	switch {
	case oracleDiffers(b, err):
	case err != nil && oerr != nil:
	case err != nil:
		t.Errorf("Parse(%q) = %v; oracle accepts %+v", b, err, oh)
	case oerr != nil:
		t.Errorf("Parse(%q) = %+v, %d; oracle refuses: %v", b, h, n, oerr)
	default:
		if want := fromOracle(oh); h != want || n != on {
			t.Errorf("Parse(%q) = %+v, %d; oracle says %+v, %d", b, h, n, want, on)
		}
	}
}

// fromOracle converts the oracle's header to ours.
func fromOracle(oh *oracle.Header) proxyproto.Header {
	h := proxyproto.Header{Version: int(oh.Version), Local: oh.Command.IsLocal()}
	if h.Local {
		return h
	}
	src, _ := oh.SourceAddr.(*net.TCPAddr)
	dst, _ := oh.DestinationAddr.(*net.TCPAddr)
	if src != nil && dst != nil {
		h.Source, h.Dest = src.AddrPort(), dst.AddrPort()
	}
	return h
}

func TestOracle(t *testing.T) {
	var inputs []string
	for _, tc := range validCases() {
		inputs = append(inputs, tc.in, tc.in+first)
	}
	for _, tc := range incompleteCases() {
		inputs = append(inputs, tc.in)
	}
	for _, tc := range refusedCases() {
		inputs = append(inputs, tc.in)
	}
	for _, in := range inputs {
		b := []byte(in)
		h, n, err := proxyproto.Parse(b, proxyproto.Auto)
		compareOracle(t, b, h, n, err)
	}
}

// checkResult checks the invariants of one result of Parse(b, mode).
func checkResult(t *testing.T, b []byte, mode proxyproto.Mode, h proxyproto.Header, n int, err error) {
	t.Helper()
	var e *proxyproto.Error
	switch {
	case err == nil:
		if n <= 0 || n > len(b) || h.Version != 1 && h.Version != 2 ||
			h.Local != (h.Source == netip.AddrPort{}) || h.Local != (h.Dest == netip.AddrPort{}) {
			t.Fatalf("Parse(%q, %v) = %+v, %d, nil; want 0 < n <= %d and addresses iff not Local",
				b, mode, h, n, len(b))
		}
	case errors.As(err, &e):
		switch e.Reason {
		case proxyproto.ReasonMissing, proxyproto.ReasonMalformed, proxyproto.ReasonTooLong,
			proxyproto.ReasonUnsupported, proxyproto.ReasonVersion:
		default:
			t.Fatalf("Parse(%q, %v) reason %q; want one of the five Parse returns", b, mode, e.Reason)
		}
		fallthrough
	case errors.Is(err, proxyproto.ErrIncomplete):
		if n != 0 || h != (proxyproto.Header{}) {
			t.Fatalf("Parse(%q, %v) = %+v, %d, %v; want zero Header and n", b, mode, h, n, err)
		}
	default:
		t.Fatalf("Parse(%q, %v) error %v is neither ErrIncomplete nor *Error", b, mode, err)
	}
	checkSplits(t, b, mode, h, n, err)
}

// checkModes checks that the version-specific modes agree with Auto on
// their own version and refuse the other by name.
func checkModes(t *testing.T, b []byte, auto, v1, v2 error, hAuto, h1, h2 proxyproto.Header) {
	t.Helper()
	if len(b) == 0 {
		return
	}
	own, ownH, other := v1, h1, v2
	if b[0] != 'P' {
		own, ownH, other = v2, h2, v1
	}
	if reasonOf(own) != reasonOf(auto) || (own == nil) != (auto == nil) || ownH != hAuto {
		t.Fatalf("Parse(%q): mode of its version gives %+v, %v; Auto gives %+v, %v", b, ownH, own, hAuto, auto)
	}
	otherOK := errors.Is(other, proxyproto.ErrIncomplete) || reasonOf(other) == proxyproto.ReasonVersion
	if reasonOf(auto) == proxyproto.ReasonMissing {
		otherOK = reasonOf(other) == proxyproto.ReasonMissing
	}
	if !otherOK {
		t.Fatalf("Parse(%q): mode of the other version gives %v; Auto gives %v", b, other, auto)
	}
}

// checkSignature checks HasSignature(b) against Parse(b, Auto)'s error:
// only a missing header has no signature, and an undecided one is awaited.
func checkSignature(t *testing.T, b []byte, auto error) {
	t.Helper()
	sig, undecided := proxyproto.HasSignature(b)
	missing := reasonOf(auto) == proxyproto.ReasonMissing
	if sig && undecided || (!sig && !undecided) != missing ||
		undecided && !errors.Is(auto, proxyproto.ErrIncomplete) {
		t.Fatalf("HasSignature(%q) = %v, %v; but Parse gives %v", b, sig, undecided, auto)
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range validCases() {
		f.Add([]byte(tc.in))
		f.Add([]byte(tc.in + first))
	}
	for _, tc := range incompleteCases() {
		f.Add([]byte(tc.in))
	}
	for _, tc := range refusedCases() {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var hs [3]proxyproto.Header
		var errs [3]error
		for i, mode := range []proxyproto.Mode{proxyproto.Auto, proxyproto.V1, proxyproto.V2} {
			h, n, err := proxyproto.Parse(b, mode)
			checkResult(t, b, mode, h, n, err)
			if mode == proxyproto.Auto {
				compareOracle(t, b, h, n, err)
			}
			hs[i], errs[i] = h, err
		}
		checkModes(t, b, errs[0], errs[1], errs[2], hs[0], hs[1], hs[2])
		checkSignature(t, b, errs[0])
	})
}
