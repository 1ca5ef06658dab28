package egress

// The address ranges no policy reaches unless the operator opens them.

import (
	"net/netip"
	"slices"
)

// forbiddenRanges are the ranges Forbidden reports: loopback, private,
// shared, link-local (cloud metadata included), special-purpose,
// multicast and reserved addresses, and IPv6 ranges that are not global.
var forbiddenRanges = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),         // "this network"
	netip.MustParsePrefix("10.0.0.0/8"),        // RFC 1918
	netip.MustParsePrefix("100.64.0.0/10"),     // shared (CGNAT)
	netip.MustParsePrefix("127.0.0.0/8"),       // loopback
	netip.MustParsePrefix("169.254.0.0/16"),    // link-local, 169.254.169.254 metadata
	netip.MustParsePrefix("172.16.0.0/12"),     // RFC 1918
	netip.MustParsePrefix("192.0.0.0/24"),      // IETF protocol assignments
	netip.MustParsePrefix("192.168.0.0/16"),    // RFC 1918
	netip.MustParsePrefix("198.18.0.0/15"),     // benchmarking
	netip.MustParsePrefix("224.0.0.0/4"),       // multicast
	netip.MustParsePrefix("240.0.0.0/4"),       // reserved, 255.255.255.255 broadcast
	netip.MustParsePrefix("::/96"),             // unspecified, loopback, IPv4-compatible
	netip.MustParsePrefix("64:ff9b:1::/48"),    // local-use NAT64 (RFC 8215)
	netip.MustParsePrefix("fc00::/7"),          // unique local (RFC 4193), fd00:ec2::254 metadata
	netip.MustParsePrefix("fe80::/10"),         // link-local
	netip.MustParsePrefix("fec0::/10"),         // site-local (deprecated)
	netip.MustParsePrefix("ff00::/8"),          // multicast
	netip.MustParsePrefix("fd00:ec2::254/128"), // metadata (inside fc00::/7; named for the record)
}

// Embedded IPv4 addresses: NAT64 (the last 32 bits) and 6to4 (bits 16-48).
var (
	nat64  = netip.MustParsePrefix("64:ff9b::/96")
	sixTo4 = netip.MustParsePrefix("2002::/16")
)

// Forbidden reports whether ip is in a range no policy reaches unless
// the operator opens it (Rules.Open): 0.0.0.0/8, 10.0.0.0/8,
// 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12,
// 192.0.0.0/24, 192.168.0.0/16, 198.18.0.0/15, 224.0.0.0/4, 240.0.0.0/4
// (with 255.255.255.255), ::/96 (with :: and ::1), 64:ff9b:1::/48,
// fc00::/7 (with fd00:ec2::254), fe80::/10, fec0::/10 and ff00::/8.
// IPv4-mapped addresses (::ffff:a.b.c.d) are judged as IPv4, and NAT64
// (64:ff9b::/96) and 6to4 (2002::/16) addresses by the IPv4 address they
// embed too. The host's own addresses (Rules.HostAddrs) are forbidden
// by the policies compiled with them, not by this function.
func Forbidden(ip netip.Addr) bool {
	return slices.ContainsFunc(addrForms(ip), forbiddenForm)
}

// forbiddenForm reports whether a, one of the forms addrForms returns,
// is in a forbidden range itself.
func forbiddenForm(a netip.Addr) bool {
	return slices.ContainsFunc(forbiddenRanges, func(p netip.Prefix) bool { return p.Contains(a) })
}

// addrForms returns ip without zone and unmapped, followed by the IPv4
// address a NAT64 or 6to4 address embeds: the addresses a connection to
// ip may reach, all of which a decision must check.
func addrForms(ip netip.Addr) []netip.Addr {
	ip = ip.WithZone("").Unmap()
	forms := []netip.Addr{ip}
	if !ip.Is6() {
		return forms
	}
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		forms = append(forms, netip.AddrFrom4([4]byte(b[12:16])))
	case sixTo4.Contains(ip):
		forms = append(forms, netip.AddrFrom4([4]byte(b[2:6])))
	}
	return forms
}
