package proxyproto

import "net/netip"

// The parsers here work on byte slices because converting a field to a
// string for netip.ParseAddr or strconv would allocate on every header. They
// follow netip.ParseAddr's grammar, minus zones, which the spec's address
// grammar has no room for.

// maxIPv6Text is the longest IPv6 literal: six 4-digit groups and a dotted
// quad tail.
const maxIPv6Text = 6*5 + 15

// parseIPv4 parses a dotted quad, refusing octets with leading zeros as
// netip does. With partial set, s may be cut short and only fails when no
// more bytes could make it valid.
func parseIPv4(s []byte, partial bool) (ip [4]byte, ok bool) {
	val, pos, digits := 0, 0, 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			if digits == 1 && val == 0 {
				return ip, false
			}
			val = val*10 + int(c-'0')
			digits++
			if val > 255 {
				return ip, false
			}
		case c == '.' && digits > 0 && pos < 3:
			ip[pos] = byte(val)
			pos++
			val, digits = 0, 0
		default:
			return ip, false
		}
	}
	if partial {
		return ip, true
	}
	ip[3] = byte(val)
	return ip, pos == 3 && digits > 0
}

// parsePort parses a decimal port 0..65535 with no sign and no leading zero
// but for "0" itself. With partial set, s may be cut short.
func parsePort(s []byte, partial bool) (port uint16, ok bool) {
	if len(s) == 0 || len(s) > 1 && s[0] == '0' {
		return 0, partial && len(s) == 0
	}
	val := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		val = val*10 + int(c-'0')
		if val > 0xffff {
			return 0, false
		}
	}
	return uint16(val), true
}

// isIPv6Prefix is a cheap test that s may still grow into an IPv6 literal:
// the right characters, and not too many of them. It lets a cut TCP6 line
// be refused early without a full prefix grammar.
func isIPv6Prefix(s []byte) bool {
	if len(s) > maxIPv6Text {
		return false
	}
	for _, c := range s {
		if _, ok := hexDigit(c); !ok && c != ':' && c != '.' {
			return false
		}
	}
	return true
}

// parseIPv6 parses an IPv6 literal as netip.ParseAddr does, without zones.
func parseIPv6(s []byte) (netip.Addr, bool) {
	var ip [16]byte
	ellipsis := -1 // where "::" stands in ip
	if len(s) >= 2 && s[0] == ':' && s[1] == ':' {
		ellipsis, s = 0, s[2:]
		if len(s) == 0 {
			return netip.IPv6Unspecified(), true
		}
	}
	i := 0
	for i < 16 {
		group, n := hexGroup(s)
		if n == 0 {
			return netip.Addr{}, false
		}
		if n < len(s) && s[n] == '.' {
			return ipv4Tail(ip, i, ellipsis, s)
		}
		ip[i], ip[i+1] = byte(group>>8), byte(group)
		i += 2
		if s = s[n:]; len(s) == 0 {
			break
		}
		if s[0] != ':' || len(s) == 1 {
			return netip.Addr{}, false
		}
		if s = s[1:]; s[0] == ':' {
			if ellipsis >= 0 {
				return netip.Addr{}, false
			}
			if ellipsis, s = i, s[1:]; len(s) == 0 {
				break
			}
		}
	}
	if len(s) != 0 {
		return netip.Addr{}, false
	}
	return expandEllipsis(ip, i, ellipsis)
}

// ipv4Tail parses the dotted quad s that ends an IPv6 literal at ip[i:].
func ipv4Tail(ip [16]byte, i, ellipsis int, s []byte) (netip.Addr, bool) {
	if ellipsis < 0 && i != 12 || i+4 > 16 {
		return netip.Addr{}, false
	}
	v4, ok := parseIPv4(s, false)
	if !ok {
		return netip.Addr{}, false
	}
	copy(ip[i:], v4[:])
	return expandEllipsis(ip, i+4, ellipsis)
}

// expandEllipsis moves the i bytes parsed so far apart at the "::" so that
// it stands for at least one zero group, as it must.
func expandEllipsis(ip [16]byte, i, ellipsis int) (netip.Addr, bool) {
	if i == 16 {
		return netip.AddrFrom16(ip), ellipsis < 0
	}
	if ellipsis < 0 {
		return netip.Addr{}, false
	}
	n := 16 - i
	copy(ip[ellipsis+n:], ip[ellipsis:i])
	clear(ip[ellipsis : ellipsis+n])
	return netip.AddrFrom16(ip), true
}

// hexGroup parses the one to four hex digits that start s and returns their
// value and count; n is 0 if s does not start with a group.
func hexGroup(s []byte) (group uint16, n int) {
	for n < len(s) {
		d, ok := hexDigit(s[n])
		if !ok {
			break
		}
		if n == 4 {
			return 0, 0
		}
		group = group<<4 | uint16(d)
		n++
	}
	return group, n
}

// hexDigit returns the value of the hex digit c.
func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
