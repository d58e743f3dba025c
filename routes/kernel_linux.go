package routes

import (
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// This file holds the pure part: turning netlink dumps into podrouter's view
// (which route is a default, whose it is, which next hop is usable). Nothing
// here does I/O, so it is unit tested without privileges.

const tableLocal = unix.RT_TABLE_LOCAL

func nlFamily(fam Family) int {
	if fam == FamilyV4 {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// linkState is what podrouter needs to know about a link.
type linkState struct {
	index   int
	name    string
	admin   bool // IFF_UP
	carrier bool // IFF_LOWER_UP
	oper    netlink.LinkOperState
}

func linkStateOf(l netlink.Link) linkState {
	a := l.Attrs()
	return linkState{
		index:   a.Index,
		name:    a.Name,
		admin:   a.RawFlags&unix.IFF_UP != 0,
		carrier: a.RawFlags&unix.IFF_LOWER_UP != 0,
		oper:    a.OperState,
	}
}

// usable reports whether next hops on the link can forward, and if not why.
func (l linkState) usable() (bool, string) {
	switch {
	case !l.admin:
		return false, ReasonLinkDown
	case !l.carrier:
		return false, ReasonNoCarrier
	case l.oper != netlink.OperUp && l.oper != netlink.OperUnknown:
		return false, ReasonNotOper
	}
	return true, ""
}

// snapshot is one consistent read of links and routes of one family.
type snapshot struct {
	fam    Family
	links  map[int]linkState
	byName map[string]int
	routes []netlink.Route // every table; cloned routes already left out
	addrs  []netlink.Addr  // filled lazily, only when needed for a reason
}

func newSnapshot(fam Family, links []netlink.Link, routes []netlink.Route) *snapshot {
	s := &snapshot{fam: fam, links: make(map[int]linkState, len(links)), byName: make(map[string]int, len(links)), routes: routes}
	for _, l := range links {
		ls := linkStateOf(l)
		s.links[ls.index] = ls
		s.byName[ls.name] = ls.index
	}
	return s
}

func (s *snapshot) linkName(index int) string { return s.links[index].name }

// addrOf converts a netlink IP of family fam to netip.
func addrOf(ip net.IP, fam Family) (netip.Addr, bool) {
	if fam == FamilyV4 {
		ip = ip.To4()
	} else {
		ip = ip.To16()
	}
	a, ok := netip.AddrFromSlice(ip)
	return a, ok && ip != nil
}

// prefixOf returns a route's destination, the zero-length prefix when it
// has none (the kernel omits RTA_DST for a default route).
func prefixOf(r netlink.Route, fam Family) (netip.Prefix, bool) {
	if r.Dst == nil || r.Dst.IP == nil {
		if fam == FamilyV4 {
			return netip.PrefixFrom(netip.IPv4Unspecified(), 0), true
		}
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0), true
	}
	a, ok := addrOf(r.Dst.IP, fam)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := r.Dst.Mask.Size()
	if bits != a.BitLen() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones).Masked(), true
}

// isDefault reports whether r is a default route (0.0.0.0/0 or ::/0) of
// family fam, of any type, table or protocol.
func isDefault(r netlink.Route, fam Family) bool {
	if r.Family != nlFamily(fam) || r.MPLSDst != nil || r.Flags&unix.RTM_F_CLONED != 0 {
		return false
	}
	p, ok := prefixOf(r, fam)
	return ok && p.Bits() == 0
}

// isOwnDefault reports whether r is a default route carrying protocol proto.
func isOwnDefault(r netlink.Route, fam Family, proto int) bool {
	return isDefault(r, fam) && int(r.Protocol) == proto
}

// isConnected reports whether r is an on-link (connected) route: unicast,
// bound to a link, no gateway, not a default.
func isConnected(r netlink.Route, fam Family) bool {
	if r.Family != nlFamily(fam) || r.Type != unix.RTN_UNICAST || r.LinkIndex <= 0 ||
		r.Gw != nil || r.Via != nil || len(r.MultiPath) > 0 || r.Flags&unix.RTM_F_CLONED != 0 {
		return false
	}
	p, ok := prefixOf(r, fam)
	return ok && p.Bits() > 0
}

// kernelHop is one next hop of a route as the kernel holds it.
type kernelHop struct {
	NextHop
	dead bool // RTNH_F_DEAD: the kernel will not use it
}

// hopsOf returns the next hops of r. ok is false when r has a next hop that
// is not a plain gateway on a link (blackhole, dev-only, RTA_VIA, encap).
func hopsOf(r netlink.Route, s *snapshot) (hops []kernelHop, ok bool) {
	mk := func(gw net.IP, link, flags int) (kernelHop, bool) {
		a, valid := addrOf(gw, s.fam)
		if !valid || link <= 0 {
			return kernelHop{}, false
		}
		name := s.linkName(link)
		if a.Is6() && a.IsLinkLocalUnicast() && name != "" {
			a = a.WithZone(name)
		}
		return kernelHop{NextHop: NextHop{Gateway: a, Link: name, LinkIndex: link}, dead: flags&unix.RTNH_F_DEAD != 0}, true
	}
	if r.Type != unix.RTN_UNICAST || r.Via != nil || r.Encap != nil {
		return nil, false
	}
	if len(r.MultiPath) == 0 {
		h, valid := mk(r.Gw, r.LinkIndex, r.Flags)
		if !valid {
			return nil, false
		}
		return []kernelHop{h}, true
	}
	ok = true
	for _, nh := range r.MultiPath {
		if nh.Via != nil || nh.Encap != nil || nh.NewDst != nil {
			ok = false
			continue
		}
		h, valid := mk(nh.Gw, nh.LinkIndex, nh.Flags)
		if !valid {
			ok = false
			continue
		}
		hops = append(hops, h)
	}
	return hops, ok
}

func plainHops(k []kernelHop) []NextHop {
	out := make([]NextHop, len(k))
	for i, h := range k {
		out[i] = h.NextHop
	}
	return out
}

// defaults sorts the default routes of a snapshot by owner and key.
type defaults struct {
	oursAtKey    []netlink.Route // ours at (table, metric): normally 0 or 1
	foreignAtKey []netlink.Route // someone else's at our (table, metric)
	foreignOther []netlink.Route // someone else's in our table, other metric
	strays       []netlink.Route // ours anywhere else (old table or metric)
}

func classify(s *snapshot, cfg Config) defaults {
	var d defaults
	for _, r := range s.routes {
		if !isDefault(r, s.fam) {
			continue
		}
		ours := int(r.Protocol) == cfg.Protocol
		atKey := r.Table == cfg.Table && r.Priority == cfg.Metric && r.Tos == 0
		switch {
		case ours && atKey:
			d.oursAtKey = append(d.oursAtKey, r)
		case ours:
			d.strays = append(d.strays, r)
		case atKey:
			d.foreignAtKey = append(d.foreignAtKey, r)
		case r.Table == cfg.Table:
			d.foreignOther = append(d.foreignOther, r)
		}
	}
	return d
}

// matches reports whether the kernel's routes of ours at the key hold
// exactly want, none of it dead. IPv4 needs exactly one route (more are
// aliases added with append). IPv6 multipath routes are siblings, which
// older kernels dump as one route per next hop: their hops are merged.
func matches(ours []netlink.Route, s *snapshot, want []NextHop) bool {
	if len(ours) == 0 || len(want) == 0 {
		return len(ours) == 0 && len(want) == 0
	}
	if len(ours) > 1 && s.fam == FamilyV4 {
		return false
	}
	var hops []kernelHop
	for _, r := range ours {
		h, ok := hopsOf(r, s)
		if !ok {
			return false
		}
		hops = append(hops, h...)
	}
	for _, h := range hops {
		if h.dead {
			return false
		}
	}
	return len(hops) == len(want) && sameHops(plainHops(hops), want)
}

// resolve decides whether gw can be a next hop of a route in table: the
// lookup the kernel does when it validates a gateway (the route's table
// first, then main) must end in a connected route whose link is up.
// lastLink, when non-zero, is the link gw resolved to before; it only
// improves the reason when the link's connected route is gone (a link set
// down loses its routes, and IPv6 its addresses).
func resolve(s *snapshot, table int, gw netip.Addr, lastLink int) (NextHop, *SkippedNextHop) {
	skip := func(link int, reason string) (NextHop, *SkippedNextHop) {
		return NextHop{}, &SkippedNextHop{Gateway: gw, Link: s.linkName(link), Reason: reason}
	}
	onlyLink := 0
	if z := gw.Zone(); z != "" {
		idx, ok := s.byName[z]
		if !ok {
			return NextHop{}, &SkippedNextHop{Gateway: gw, Link: z, Reason: ReasonNoLink}
		}
		onlyLink = idx
	} else if gw.Is6() && gw.IsLinkLocalUnicast() {
		// A link-local gateway means nothing without its link.
		return skip(0, ReasonNotConnected)
	}
	bare := gw.WithZone("")
	for _, r := range s.routes {
		if r.Table != tableLocal || r.Type != unix.RTN_LOCAL || (onlyLink != 0 && r.LinkIndex != onlyLink) {
			continue
		}
		if p, ok := prefixOf(r, s.fam); ok && p.Contains(bare) && p.Bits() == bare.BitLen() {
			return skip(r.LinkIndex, ReasonLocal)
		}
	}
	tables := []int{table}
	if table != unix.RT_TABLE_MAIN {
		tables = append(tables, unix.RT_TABLE_MAIN)
	}
	for _, t := range tables {
		best, found := lookup(s, t, bare, onlyLink)
		if !found {
			continue
		}
		if !isConnected(best, s.fam) {
			return skip(0, ReasonNotConnected)
		}
		l, ok := s.links[best.LinkIndex]
		if !ok {
			return skip(0, ReasonNoLink)
		}
		if up, why := l.usable(); !up {
			return skip(l.index, why)
		}
		if bare.IsLinkLocalUnicast() {
			gw = bare.WithZone(l.name)
		}
		return NextHop{Gateway: gw, Link: l.name, LinkIndex: l.index}, nil
	}
	// No route covers gw. If an address on a link that is not usable
	// covers it (IPv4 keeps addresses of a link set down, the kernel drops
	// its routes), or the link it used to resolve to is not usable, say so.
	for _, a := range s.addrs {
		if a.IPNet == nil || (onlyLink != 0 && a.LinkIndex != onlyLink) {
			continue
		}
		ip, ok := addrOf(a.IP, s.fam)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		if l, known := s.links[a.LinkIndex]; known && netip.PrefixFrom(ip, ones).Masked().Contains(bare) {
			if up, why := l.usable(); !up {
				return skip(l.index, why)
			}
		}
	}
	if l, known := s.links[lastLink]; known && lastLink != 0 {
		if up, why := l.usable(); !up {
			return skip(l.index, why)
		}
	}
	if onlyLink != 0 {
		return skip(onlyLink, ReasonNotConnected)
	}
	return skip(0, ReasonNotConnected)
}

// lookup is a longest-prefix match of addr among the non-default routes of
// table (lowest metric wins a tie), restricted to a link when link != 0.
// Default routes are left out: a gateway reached only by a default route is
// not directly connected.
func lookup(s *snapshot, table int, addr netip.Addr, link int) (netlink.Route, bool) {
	var best netlink.Route
	bestBits, found := -1, false
	for _, r := range s.routes {
		if r.Table != table || r.Family != nlFamily(s.fam) || r.Tos != 0 {
			continue
		}
		if link != 0 && r.LinkIndex != link {
			continue
		}
		switch r.Type {
		case unix.RTN_UNICAST, unix.RTN_BLACKHOLE, unix.RTN_UNREACHABLE, unix.RTN_PROHIBIT:
		default:
			continue
		}
		p, ok := prefixOf(r, s.fam)
		if !ok || p.Bits() == 0 || !p.Contains(addr) {
			continue
		}
		if p.Bits() > bestBits || (p.Bits() == bestBits && r.Priority < best.Priority) {
			best, bestBits, found = r, p.Bits(), true
		}
	}
	return best, found
}
