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
// in an IPv4 /31 (RFC 3021) or IPv6 /127 (RFC 6164), the other of the two
// hosts (.1 and .2, ::1 and ::2) of an IPv4 /30 or IPv6 /126. It reports
// false for any other prefix length.
func otherEnd(local netip.Prefix) (netip.Addr, bool) {
	a := local.Addr()
	switch {
	case a.Is4() && local.Bits() == 31, a.Is6() && local.Bits() == 127:
		b := a.AsSlice()
		b[len(b)-1] ^= 1
		o, _ := netip.AddrFromSlice(b)
		return o, true
	case a.Is4() && local.Bits() == 30, a.Is6() && local.Bits() == 126:
		b := a.AsSlice()
		switch b[len(b)-1] & 3 {
		case 1:
			b[len(b)-1]++
		case 2:
			b[len(b)-1]--
		default: // network/broadcast (IPv6: subnet-router anycast): not a host
			return netip.Addr{}, false
		}
		o, _ := netip.AddrFromSlice(b)
		return o, true
	}
	return netip.Addr{}, false
}
