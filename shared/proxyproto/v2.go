package proxyproto

import (
	"encoding/binary"
	"net/netip"
)

// MaxV2Length caps the v2 length field (the bytes after the 16-byte fixed
// part). The spec allows 65535, but lancelot sends no TLVs it needs, and a
// low cap bounds what a trusted-but-broken balancer can make a connection
// buffer before its first question.
const MaxV2Length = 2048

// Layout of the v2 fixed part and address blocks, from section 2.2 of the
// spec.
const (
	v2FixedLen     = 16   // signature, version/command, family, length
	v2CmdLocal     = 0x0  // low nibble of byte 12
	v2CmdProxy     = 0x1  // low nibble of byte 12
	v2FamInet      = 0x11 // AF_INET, SOCK_STREAM
	v2FamInet6     = 0x21 // AF_INET6, SOCK_STREAM
	v2InetBlockLen = 4 + 4 + 2 + 2
	v2Inet6Len     = 16 + 16 + 2 + 2
)

// parseV2 parses a v2 header; b starts with the whole v2 signature. Each
// field is judged as soon as it has arrived, in wire order, so a bad field
// is refused before the rest of the header is awaited.
func parseV2(b []byte) (Header, int, error) {
	if len(b) <= 12 {
		return incomplete()
	}
	if b[12]>>4 != 2 {
		return refuse(ReasonMalformed, "v2 version nibble is not 2")
	}
	cmd := b[12] & 0x0f
	if cmd != v2CmdLocal && cmd != v2CmdProxy {
		return refuse(ReasonMalformed, "unknown v2 command")
	}
	if len(b) <= 13 {
		return incomplete()
	}
	// LOCAL ignores the family: the spec says the receiver discards the
	// address block "including the family".
	need := v2BlockLen(b[13])
	if cmd == v2CmdProxy && need == 0 {
		return refuse(ReasonUnsupported, "v2 PROXY over a family other than TCP over IPv4 or IPv6")
	}
	return parseV2Body(b, cmd == v2CmdLocal, need)
}

// parseV2Body parses what follows the family byte: the length, then the
// address block, whose size need the family sets (0 for LOCAL's unused one).
func parseV2Body(b []byte, local bool, need int) (Header, int, error) {
	if len(b) < v2FixedLen {
		return incomplete()
	}
	l := int(binary.BigEndian.Uint16(b[14:16]))
	switch {
	case l > MaxV2Length:
		return refuse(ReasonTooLong, "v2 length over MaxV2Length")
	case !local && l < need:
		return refuse(ReasonMalformed, "v2 address block too short for its family")
	case len(b) < v2FixedLen+l:
		return incomplete()
	case local:
		return Header{Version: 2, Local: true}, v2FixedLen + l, nil
	}
	// TLVs after the address block are skipped: lancelot uses none.
	return v2Addrs(b[v2FixedLen:], need), v2FixedLen + l, nil
}

// v2BlockLen is the address block size of a family byte that PROXY may use,
// or 0 for the families lancelot does not serve.
func v2BlockLen(family byte) int {
	switch family {
	case v2FamInet:
		return v2InetBlockLen
	case v2FamInet6:
		return v2Inet6Len
	}
	return 0
}

// v2Addrs decodes an address block of size need: source address,
// destination address, source port, destination port.
func v2Addrs(block []byte, need int) Header {
	alen := (need - 4) / 2
	src, _ := netip.AddrFromSlice(block[:alen])
	dst, _ := netip.AddrFromSlice(block[alen : 2*alen])
	ports := block[2*alen:]
	return Header{
		Version: 2,
		Source:  netip.AddrPortFrom(src, binary.BigEndian.Uint16(ports[0:2])),
		Dest:    netip.AddrPortFrom(dst, binary.BigEndian.Uint16(ports[2:4])),
	}
}
