package routes

import (
	"net/netip"
)

// DiscoveredPeer is a BGP neighbour found in the node's own network
// configuration (bgp.autoPeers).
type DiscoveredPeer struct {
	Address netip.Addr
	Local   netip.Addr // our address towards it; invalid when unknown
	Link    string
	Source  string // "point-to-point" or "default-gateway"
}

// otherEnd returns the other address of a point-to-point subnet: the mate
// in an IPv4 /31 (RFC 3021) or IPv6 /127 (RFC 6164), the other host of an
// IPv4 /30. It reports false for any other prefix length.
func otherEnd(local netip.Prefix) (netip.Addr, bool) {
	a := local.Addr()
	switch {
	case a.Is4() && local.Bits() == 31, a.Is6() && local.Bits() == 127:
		b := a.AsSlice()
		b[len(b)-1] ^= 1
		o, _ := netip.AddrFromSlice(b)
		return o, true
	case a.Is4() && local.Bits() == 30:
		b := a.As4()
		switch b[3] & 3 {
		case 1:
			b[3]++
		case 2:
			b[3]--
		default: // network or broadcast address: not a host
			return netip.Addr{}, false
		}
		return netip.AddrFrom4(b), true
	}
	return netip.Addr{}, false
}
