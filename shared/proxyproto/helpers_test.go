package proxyproto_test

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/camelot/lancelot/shared/proxyproto"
)

// sig2 is the v2 signature.
const sig2 = "\r\n\r\n\x00\r\nQUIT\n"

// v2 builds a v2 header: signature, version 2 with cmd, family, length of
// body, body.
func v2(cmd, family byte, body string) string {
	return v2Len(cmd, family, len(body), body)
}

// v2Len is v2 with a length field that need not match body.
func v2Len(cmd, family byte, length int, body string) string {
	fixed := []byte{0x20 | cmd, family, 0, 0}
	binary.BigEndian.PutUint16(fixed[2:], uint16(length))
	return sig2 + string(fixed) + body
}

// block is a v2 address block for src and dst, which must be of one family.
func block(src, dst string) string {
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	var b []byte
	b = append(b, s.Addr().AsSlice()...)
	b = append(b, d.Addr().AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, s.Port())
	b = binary.BigEndian.AppendUint16(b, d.Port())
	return string(b)
}

// tlv is one v2 TLV.
func tlv(typ byte, value string) string {
	return string([]byte{typ, byte(len(value) >> 8), byte(len(value))}) + value
}

// proxied is the Header of a PROXY line or command.
func proxied(version int, src, dst string) proxyproto.Header {
	return proxyproto.Header{
		Version: version,
		Source:  netip.MustParseAddrPort(src),
		Dest:    netip.MustParseAddrPort(dst),
	}
}

// local is the Header of a v1 UNKNOWN line or a v2 LOCAL command.
func local(version int) proxyproto.Header {
	return proxyproto.Header{Version: version, Local: true}
}

// validCase is a complete header; mode is the version-specific mode that
// accepts it (Auto does too).
type validCase struct {
	name string
	in   string
	mode proxyproto.Mode
	want proxyproto.Header
}

func validCases() []validCase {
	maxTLV := strings.Repeat("x", proxyproto.MaxV2Length-12-3)
	ffff := "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
	return []validCase{
		{"v1 tcp4", "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", proxyproto.V1,
			proxied(1, "192.168.0.1:56324", "192.168.0.11:443")},
		{"v1 tcp4 extremes", "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", proxyproto.V1,
			proxied(1, "0.0.0.0:0", "255.255.255.255:65535")},
		{"v1 tcp6", "PROXY TCP6 2001:db8::1 2001:DB8::2 56324 443\r\n", proxyproto.V1,
			proxied(1, "[2001:db8::1]:56324", "[2001:db8::2]:443")},
		{"v1 tcp6 mapped", "PROXY TCP6 ::ffff:10.0.0.1 :: 1 2\r\n", proxyproto.V1,
			proxied(1, "[::ffff:10.0.0.1]:1", "[::]:2")},
		{"v1 tcp6 longest", "PROXY TCP6 " + ffff + " " + ffff + " 65535 65535\r\n", proxyproto.V1,
			proxied(1, "["+ffff+"]:65535", "["+ffff+"]:65535")},
		{"v1 unknown", "PROXY UNKNOWN\r\n", proxyproto.V1, local(1)},
		{"v1 unknown worst case 107 bytes", "PROXY UNKNOWN " + ffff + " " + ffff + " 65535 65535\r\n",
			proxyproto.V1, local(1)},
		{"v1 unknown free text", "PROXY UNKNOWN anything \r goes\r\n", proxyproto.V1, local(1)},
		{"v2 local unspec", v2(0, 0x00, ""), proxyproto.V2, local(2)},
		{"v2 local inet ignored", v2(0, 0x11, block("1.2.3.4:5", "6.7.8.9:10")), proxyproto.V2, local(2)},
		{"v2 local odd family", v2(0, 0x45, "abc"), proxyproto.V2, local(2)},
		{"v2 local unix short", v2(0, 0x31, ""), proxyproto.V2, local(2)},
		{"v2 proxy inet", v2(1, 0x11, block("192.168.0.1:56324", "192.168.0.11:443")), proxyproto.V2,
			proxied(2, "192.168.0.1:56324", "192.168.0.11:443")},
		{"v2 proxy inet tlvs", v2(1, 0x11, block("10.0.0.1:1", "10.0.0.2:2")+tlv(0x01, "h2")+tlv(0x04, "")),
			proxyproto.V2, proxied(2, "10.0.0.1:1", "10.0.0.2:2")},
		{"v2 proxy inet max length", v2(1, 0x11, block("10.0.0.1:1", "10.0.0.2:2")+tlv(0x04, maxTLV)),
			proxyproto.V2, proxied(2, "10.0.0.1:1", "10.0.0.2:2")},
		{"v2 proxy inet6", v2(1, 0x21, block("[2001:db8::1]:56324", "[2001:db8::2]:443")), proxyproto.V2,
			proxied(2, "[2001:db8::1]:56324", "[2001:db8::2]:443")},
		{"v2 proxy inet6 tlvs", v2(1, 0x21, block("[::1]:1", "[::2]:2")+tlv(0x05, "unique-id")),
			proxyproto.V2, proxied(2, "[::1]:1", "[::2]:2")},
	}
}

// incompleteCase is a valid prefix in mode.
type incompleteCase struct {
	in   string
	mode proxyproto.Mode
}

func incompleteCases() []incompleteCase {
	a, v1, v2m := proxyproto.Auto, proxyproto.V1, proxyproto.V2
	return []incompleteCase{
		{"", a}, {"", v1}, {"", v2m}, {"P", a}, {"PROXY", a}, {"PROXY ", a}, {"PROXY T", a},
		{"PROXY TCP4", a}, {"PROXY TCP4 1.2.", a}, {"PROXY TCP4 1.2.3.4 ", a},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 0", a}, {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2", a},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", a}, {"PROXY TCP6 ::1 ", a}, {"PROXY TCP6 2001:db8::1.2", a},
		{"PROXY UNKNOWN", a}, {"PROXY UNKNOWN\r", a}, {"PROXY UNKNOWN \r\r", a},
		{"\r", a}, {"\r\n\r\n", a}, {sig2, a}, {sig2 + "\x21", a}, {sig2 + "\x21\x11", a},
		{v2(1, 0x11, block("1.2.3.4:5", "6.7.8.9:10"))[:27], a},
		{v2Len(0, 0, 5, "abcd"), a},
		// A signature the mode refuses is awaited, to be refused as "version".
		{"PROXY", v2m}, {sig2[:11], v1},
	}
}

// refusedCase is a header refused in mode with reason.
type refusedCase struct {
	in     string
	mode   proxyproto.Mode
	reason string
}

func refusedCases() []refusedCase {
	a := proxyproto.Auto
	inet := block("1.2.3.4:5", "6.7.8.9:10")
	tcp4 := "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"
	const (
		missing     = proxyproto.ReasonMissing
		malformed   = proxyproto.ReasonMalformed
		tooLong     = proxyproto.ReasonTooLong
		unsupported = proxyproto.ReasonUnsupported
		version     = proxyproto.ReasonVersion
	)
	return []refusedCase{
		// No header: decided at the first byte that disagrees.
		{"W", a, missing}, {"What is your name?", a, missing}, {"W", proxyproto.V1, missing},
		{"W", proxyproto.V2, missing}, {"PROXX", a, missing}, {"PROXY\r\n", a, missing},
		{"PROXX", proxyproto.V2, missing}, {"\r\n\r\nX", a, missing}, {"\r\n\r\nX", proxyproto.V1, missing},
		{"\x00", a, missing}, {"proxy TCP4", a, missing},
		// Wrong version for the mode.
		{tcp4, proxyproto.V2, version}, {"PROXY ", proxyproto.V2, version},
		{sig2, proxyproto.V1, version}, {v2(1, 0x11, inet), proxyproto.V1, version},
		{tcp4, proxyproto.Off, version}, {sig2, proxyproto.Off, version},
		// Malformed v1, refused as early as no continuation can be valid.
		{"PROXY FOO", a, malformed}, {"PROXY TCP5", a, malformed}, {"PROXY tcp4", a, malformed},
		{"PROXY  TCP4", a, malformed}, {"PROXY TCP4  1.2.3.4", a, malformed},
		{"PROXY TCP4 01.2.3.4", a, malformed}, {"PROXY TCP4 1.2.3.256", a, malformed},
		{"PROXY TCP4 1.2.3.4.", a, malformed}, {"PROXY TCP4 1..2", a, malformed},
		{"PROXY TCP4 ::ffff:1.2.3.4 ::1 1 2\r\n", a, malformed},
		{"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", a, malformed},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", a, malformed},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", a, malformed},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", a, malformed},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n", a, malformed},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n", a, malformed},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", a, malformed},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", a, malformed},
		{"PROXY TCP4 1.2.3.4\r", a, malformed}, {"PROXY TCP4\r\n", a, malformed},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", a, malformed},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", a, malformed},
		{"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", a, malformed},
		{"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", a, malformed}, {"PROXY TCP6 fe80::1%", a, malformed},
		{"PROXY TCP6 1::2::3 ::1 1 2\r\n", a, malformed}, {"PROXY TCP6 12345:: ::1 1 2\r\n", a, malformed},
		{"PROXY TCP6 ::1 ::01.2.3.4 1 2\r\n", a, malformed},
		{"PROXY TCP6 " + strings.Repeat("0", 46), a, malformed},
		{"PROXY UNKNOWNX\r\n", a, malformed}, {"PROXY UNKNOWN\rX", a, malformed},
		{"PROXY UNKNOWN a\nb\r\n", a, malformed}, {"PROXY \r\n", a, malformed},
		// Too long: 107 bytes without a CRLF, even if the LF is the 108th.
		{"PROXY UNKNOWN " + strings.Repeat("a", 93), a, tooLong},
		{"PROXY UNKNOWN " + strings.Repeat("a", 92) + "\r\n", a, tooLong},
		// Malformed v2.
		{sig2 + "\x11", a, malformed}, {sig2 + "\x31", a, malformed}, {sig2 + "\x22", a, malformed},
		{v2Len(1, 0x11, 11, ""), a, malformed}, {v2Len(1, 0x21, 35, ""), a, malformed},
		{v2(1, 0x21, inet), a, malformed},
		// Too long v2, decided from the length field alone.
		{v2Len(1, 0x11, proxyproto.MaxV2Length+1, ""), a, tooLong},
		{v2Len(0, 0x00, 0xffff, ""), a, tooLong},
		// Unsupported v2 families, decided from the family byte alone.
		{sig2 + "\x21\x00", a, unsupported}, {sig2 + "\x21\x31", a, unsupported},
		{sig2 + "\x21\x12", a, unsupported}, {sig2 + "\x21\x22", a, unsupported},
		{sig2 + "\x21\x10", a, unsupported}, {sig2 + "\x21\x41", a, unsupported},
		{v2(1, 0x32, strings.Repeat("\x00", 216)), a, unsupported},
		{v2(1, 0x12, inet), a, unsupported}, {v2(1, 0x22, strings.Repeat("\x00", 36)), a, unsupported},
		{v2(1, 0x11, inet+tlv(0x04, strings.Repeat("x", proxyproto.MaxV2Length-14))), a, tooLong},
		{v2(0, 0x00, strings.Repeat("x", 3000)), a, tooLong},
	}
}

// reasonOf returns the Reason of err if it is an *Error, else "".
func reasonOf(err error) string {
	var e *proxyproto.Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// sameResult compares two results of Parse, errors by Reason or identity.
func sameResult(h1 proxyproto.Header, n1 int, err1 error, h2 proxyproto.Header, n2 int, err2 error) bool {
	return h1 == h2 && n1 == n2 && reasonOf(err1) == reasonOf(err2) &&
		errors.Is(err1, proxyproto.ErrIncomplete) == errors.Is(err2, proxyproto.ErrIncomplete) &&
		(err1 == nil) == (err2 == nil)
}

// checkSplits checks that Parse gives b's result (h, n, err) whichever
// prefix of b it is shown first: every prefix is incomplete or already has
// the same result, and a complete header is incomplete until its last byte.
func checkSplits(t *testing.T, b []byte, mode proxyproto.Mode, h proxyproto.Header, n int, err error) {
	t.Helper()
	for k := range len(b) {
		hk, nk, errk := proxyproto.Parse(b[:k], mode)
		mustWait := err == nil && k < n || errors.Is(err, proxyproto.ErrIncomplete)
		switch {
		case errors.Is(errk, proxyproto.ErrIncomplete) && (mustWait || err != nil):
		case !mustWait && sameResult(hk, nk, errk, h, n, err):
		default:
			t.Fatalf("Parse(%q, %v) = %+v, %d, %v; but Parse(%q) = %+v, %d, %v",
				b[:k], mode, hk, nk, errk, b, h, n, err)
		}
	}
}
