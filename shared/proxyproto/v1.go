package proxyproto

import (
	"bytes"
	"net/netip"
)

// v1MaxLen is the longest v1 line the spec allows, CRLF included: "PROXY
// UNKNOWN" with two full IPv6 addresses and ports.
const v1MaxLen = 107

// parseV1 parses a v1 line; b starts with "PROXY ". Only the first
// v1MaxLen bytes can matter: the line ends within them or is too long.
func parseV1(b []byte) (Header, int, error) {
	window := b[:min(len(b), v1MaxLen)]
	lf := bytes.IndexByte(window, '\n')
	if lf < 0 {
		return v1Unterminated(window[len(v1Sig):], len(window) == v1MaxLen)
	}
	// The first LF ends the line, even after UNKNOWN, as a bare LF in a
	// header is more likely an attack on a lenient parser than a balancer.
	if window[lf-1] != '\r' {
		return refuse(ReasonMalformed, "v1 line feed without carriage return")
	}
	h, err := parseV1Body(window[len(v1Sig):lf-1], true)
	if err != nil {
		return Header{}, 0, err
	}
	return h, lf + 1, nil
}

// v1Unterminated judges a v1 body whose LF has not arrived: refused if no
// bytes could complete it, too long if the limit is reached, else incomplete.
func v1Unterminated(body []byte, atLimit bool) (Header, int, error) {
	if err := checkV1Prefix(body); err != nil {
		return Header{}, 0, err
	}
	if atLimit {
		return refuse(ReasonTooLong, "v1 line longer than 107 bytes")
	}
	return incomplete()
}

// checkV1Prefix returns an error if no bytes appended to body can make it a
// valid v1 body followed by CRLF.
func checkV1Prefix(body []byte) error {
	proto, _, more := cutSpace(body)
	if more && string(proto) == "UNKNOWN" {
		return nil // anything may follow, up to the CRLF
	}
	// Outside UNKNOWN's free text a CR can only start the CRLF, so the
	// body before it must already be whole.
	if len(body) > 0 && body[len(body)-1] == '\r' {
		_, err := parseV1Body(body[:len(body)-1], true)
		return err
	}
	_, err := parseV1Body(body, false)
	return err
}

// parseV1Body parses the text between "PROXY " and the CRLF. When final is
// false, body may be cut anywhere: the result is then only an error, for a
// body no more bytes could make valid, or a zero Header.
func parseV1Body(body []byte, final bool) (Header, error) {
	proto, rest, more := cutSpace(body)
	if !more && !final {
		if !isV1ProtoPrefix(proto) {
			return Header{}, malformed("unknown v1 protocol")
		}
		return Header{}, nil
	}
	switch string(proto) {
	case "UNKNOWN":
		return Header{Version: 1, Local: true}, nil
	case "TCP4":
		return parseV1Fields(rest, more, final, false)
	case "TCP6":
		return parseV1Fields(rest, more, final, true)
	}
	return Header{}, malformed("unknown v1 protocol")
}

// isV1ProtoPrefix reports whether p could still grow into a v1 protocol.
func isV1ProtoPrefix(p []byte) bool {
	for _, proto := range [...]string{"TCP4", "TCP6", "UNKNOWN"} {
		if len(p) <= len(proto) && string(p) == proto[:len(p)] {
			return true
		}
	}
	return false
}

// parseV1Fields splits the rest of a TCP4 or TCP6 line into its four
// single-space separated fields and parses them. hasRest reports whether a
// space followed the protocol at all.
func parseV1Fields(rest []byte, hasRest, final, tcp6 bool) (Header, error) {
	if !hasRest {
		return Header{}, malformed("v1 line without addresses")
	}
	var f [4][]byte
	for i := range f {
		tok, next, more := cutSpace(rest)
		f[i] = tok
		switch {
		case more && i == len(f)-1:
			return Header{}, malformed("v1 line with more than four fields")
		case !more && !final:
			return Header{}, checkV1Fields(f[:i+1], tcp6)
		case !more && i < len(f)-1:
			return Header{}, malformed("v1 line with fewer than four fields")
		}
		rest = next
	}
	return v1Header(f, tcp6)
}

// checkV1Fields checks the fields of a cut line: all whole but the last,
// which need only be a valid prefix.
func checkV1Fields(f [][]byte, tcp6 bool) error {
	for i, tok := range f {
		partial := i == len(f)-1
		ok := false
		if i < 2 {
			_, ok = parseV1Addr(tok, tcp6, partial)
		} else {
			_, ok = parsePort(tok, partial)
		}
		if !ok {
			return malformed(v1FieldDetail(i))
		}
	}
	return nil
}

// v1Header builds the header of a whole TCP4 or TCP6 line.
func v1Header(f [4][]byte, tcp6 bool) (Header, error) {
	src, ok0 := parseV1Addr(f[0], tcp6, false)
	dst, ok1 := parseV1Addr(f[1], tcp6, false)
	sport, ok2 := parsePort(f[2], false)
	dport, ok3 := parsePort(f[3], false)
	for i, ok := range [...]bool{ok0, ok1, ok2, ok3} {
		if !ok {
			return Header{}, malformed(v1FieldDetail(i))
		}
	}
	return Header{
		Version: 1,
		Source:  netip.AddrPortFrom(src, sport),
		Dest:    netip.AddrPortFrom(dst, dport),
	}, nil
}

// v1FieldDetail names what is wrong with field i of a TCP line.
func v1FieldDetail(i int) string {
	switch i {
	case 0:
		return "bad v1 source address"
	case 1:
		return "bad v1 destination address"
	case 2:
		return "bad v1 source port"
	}
	return "bad v1 destination port"
}

// parseV1Addr parses an address of a TCP4 (dotted quad) or TCP6 (IPv6) line.
// With partial set, tok may be cut short and only fails when no more bytes
// could make it valid.
func parseV1Addr(tok []byte, tcp6, partial bool) (netip.Addr, bool) {
	if !tcp6 {
		a, ok := parseIPv4(tok, partial)
		return netip.AddrFrom4(a), ok
	}
	if partial {
		return netip.Addr{}, isIPv6Prefix(tok)
	}
	return parseIPv6(tok)
}

// cutSpace splits b around its first space.
func cutSpace(b []byte) (before, after []byte, found bool) {
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		return b[:i], b[i+1:], true
	}
	return b, nil, false
}
