package proxyproto

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// AllowList is the set of peers trusted to send a header. The zero value
// trusts no one.
type AllowList struct {
	prefixes []netip.Prefix
}

// ParseAllowList parses comma-separated CIDR prefixes such as
// "10.0.0.0/8, 127.0.0.1". A bare address stands for itself alone (/32 or
// /128), spaces around items are ignored, and host bits in a prefix are
// cleared. An empty list is an error: trusting no one is turning the
// protocol off, which the Mode says more plainly.
func ParseAllowList(s string) (AllowList, error) {
	if strings.TrimSpace(s) == "" {
		return AllowList{}, errors.New("proxyproto: empty allow list")
	}
	var a AllowList
	for item := range strings.SplitSeq(s, ",") {
		p, err := parsePrefix(strings.TrimSpace(item))
		if err != nil {
			return AllowList{}, fmt.Errorf("proxyproto: allow list item %q: %w", item, err)
		}
		a.prefixes = append(a.prefixes, p)
	}
	return a, nil
}

// parsePrefix parses one allow list item.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	// A zone names an interface, not a peer, and netip.Prefix has none.
	if addr.Zone() != "" {
		return netip.Prefix{}, errors.New("address has a zone")
	}
	return netip.PrefixFrom(addr, addr.BitLen()), nil
}

// Contains reports whether addr is in the list. An IPv4 address and its
// IPv4-mapped IPv6 form (::ffff:a.b.c.d, as a dual-stack socket reports
// IPv4 peers) are the same peer, so either form matches a prefix written in
// either form. A zone is ignored.
func (a AllowList) Contains(addr netip.Addr) bool {
	v4 := addr.WithZone("").Unmap()
	mapped := v4
	if v4.Is4() {
		mapped = netip.AddrFrom16(v4.As16())
	}
	for _, p := range a.prefixes {
		if p.Contains(v4) || p.Contains(mapped) {
			return true
		}
	}
	return false
}

// String returns the list as ParseAllowList accepts it, in canonical form:
// "10.0.0.0/8,127.0.0.1/32".
func (a AllowList) String() string {
	items := make([]string, len(a.prefixes))
	for i, p := range a.prefixes {
		items[i] = p.String()
	}
	return strings.Join(items, ",")
}

// Empty reports whether the list trusts no one, as only the zero value does.
func (a AllowList) Empty() bool {
	return len(a.prefixes) == 0
}
