package proxyproto

import "net/netip"

// Header is a parsed PROXY header.
type Header struct {
	// Version is 1 or 2.
	Version int
	// Local is set for a v2 LOCAL command or a v1 "UNKNOWN" line: the
	// balancer speaks for itself (a health check, say), so the
	// connection's own peer address stands.
	Local bool
	// Source is the client the balancer saw; zero when Local.
	Source netip.AddrPort
	// Dest is the address the client connected to; zero when Local.
	Dest netip.AddrPort
}

// The signatures that open each version's header. They are constants, not
// byte slices, so that nothing at package level can be modified.
const (
	v1Sig = "PROXY "
	v2Sig = "\r\n\r\n\x00\r\nQUIT\n"
)

// Parse looks for a complete header at the start of b, a buffer that grows
// between calls. It returns:
//   - (h, n, nil): a complete, valid header of n bytes; b[n:] is the
//     client's first data.
//   - (Header{}, 0, ErrIncomplete): b is a valid prefix of a header, or of a
//     signature the mode refuses (so that the refusal can say which); call
//     again with more bytes. An empty b is incomplete.
//   - (Header{}, 0, err) with err an *Error: the connection must be closed.
//
// mode should not be Off: Off allows no version, so every whole signature is
// refused with ReasonVersion.
func Parse(b []byte, mode Mode) (Header, int, error) {
	switch {
	case len(b) == 0:
		return incomplete()
	case b[0] == v1Sig[0]:
		return parseSigned(b, v1Sig, mode.allows(1), parseV1)
	case b[0] == v2Sig[0]:
		return parseSigned(b, v2Sig, mode.allows(2), parseV2)
	}
	return refuse(ReasonMissing, "no PROXY signature")
}

// parseSigned checks b against one version's signature before handing it to
// that version's parser. The signature is awaited in full even when the mode
// refuses the version, because "version" is a more useful label than
// "missing" for a balancer set to the wrong version.
func parseSigned(b []byte, sig string, allowed bool, parse func([]byte) (Header, int, error)) (Header, int, error) {
	n := min(len(b), len(sig))
	switch {
	case string(b[:n]) != sig[:n]:
		return refuse(ReasonMissing, "no PROXY signature")
	case n < len(sig):
		return incomplete()
	case !allowed:
		return refuse(ReasonVersion, "signature of a version the mode does not allow")
	}
	return parse(b)
}

// HasSignature reports whether b starts with a v1 or v2 signature, for
// peers outside the allow list, whose signature closes the connection:
//   - (true, false): b starts with a whole signature ("PROXY " for v1, the
//     12-byte v2 signature).
//   - (false, true): b is a proper prefix of a signature, empty included:
//     not decidable yet.
//   - (false, false): b cannot be the start of a header.
func HasSignature(b []byte) (sig, undecided bool) {
	s1, u1 := matchSig(b, v1Sig)
	s2, u2 := matchSig(b, v2Sig)
	return s1 || s2, u1 || u2
}

// matchSig is HasSignature for one signature.
func matchSig(b []byte, sig string) (whole, prefix bool) {
	n := min(len(b), len(sig))
	if string(b[:n]) != sig[:n] {
		return false, false
	}
	return n == len(sig), n < len(sig)
}
