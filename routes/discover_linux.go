package routes

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DiscoverPeers finds the node's BGP neighbours from its own network
// configuration, for bgp.autoPeers:
//
//   - point-to-point: on each of links (every link when empty), the other
//     end of each global address on an IPv4 /31 or /30 or an IPv6 /127 or
//     /126, or
//     the peer address of an address configured with one ("ip addr add A
//     peer B");
//   - default-gateway (when gateways is set): the gateways of every default
//     route in the installer's table that podrouter did not install (from
//     the OS network configuration, DHCP or router advertisements), as
//     Cilium's DefaultGateway auto-discovery does; only via links when it
//     is given.
//
// Link-local gateways are skipped and reported in skipped: GoBGP peers by
// global address. The result is sorted by address and has no duplicates.
func (i *Installer) DiscoverPeers(ctx context.Context, links []string, gateways bool) (peers []DiscoveredPeer, skipped []string, err error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if err := i.openLocked(); err != nil {
		return nil, nil, err
	}
	all, err := dump(ctx, i, "list links", i.h.LinkList)
	if err != nil {
		return nil, nil, err
	}
	names := map[int]string{} // the links to look at, by index
	present := map[string]bool{}
	for _, l := range all {
		present[l.Attrs().Name] = true
		if len(links) == 0 || slices.Contains(links, l.Attrs().Name) {
			names[l.Attrs().Index] = l.Attrs().Name
		}
	}
	for _, want := range links {
		if !present[want] {
			skipped = append(skipped, want+": no such link")
		}
	}
	add := func(p DiscoveredPeer) {
		if !slices.ContainsFunc(peers, func(q DiscoveredPeer) bool { return q.Address == p.Address }) {
			peers = append(peers, p)
		}
	}
	addrs, err := dump(ctx, i, "list addresses", func() ([]netlink.Addr, error) {
		return i.h.AddrList(nil, unix.AF_UNSPEC)
	})
	if err != nil {
		return nil, nil, err
	}
	for _, a := range addrs {
		name, ok := names[a.LinkIndex]
		if !ok || a.IPNet == nil || a.Scope != unix.RT_SCOPE_UNIVERSE {
			continue
		}
		local, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		local = local.Unmap()
		bits, _ := a.Mask.Size()
		if a.Peer != nil {
			if pa, ok := netip.AddrFromSlice(a.Peer.IP); ok && pa.Unmap() != local {
				add(DiscoveredPeer{Address: pa.Unmap(), Local: local, Link: name, Source: "point-to-point"})
				continue
			}
		}
		if o, ok := otherEnd(netip.PrefixFrom(local, bits)); ok {
			add(DiscoveredPeer{Address: o, Local: local, Link: name, Source: "point-to-point"})
		}
	}
	if gateways {
		for _, fam := range []Family{FamilyV4, FamilyV6} {
			rs, err := dump(ctx, i, "list "+fam.String()+" routes", func() ([]netlink.Route, error) {
				return i.h.RouteListFiltered(nlFamily(fam), &netlink.Route{Table: i.cfg.Table}, netlink.RT_FILTER_TABLE)
			})
			if err != nil {
				return nil, nil, err
			}
			for _, r := range rs {
				if !isDefault(r, fam) || int(r.Protocol) == i.cfg.Protocol {
					continue
				}
				hops := []*netlink.NexthopInfo{{LinkIndex: r.LinkIndex, Gw: r.Gw}}
				if len(r.MultiPath) > 0 {
					hops = r.MultiPath
				}
				for _, h := range hops {
					gw, ok := netip.AddrFromSlice(h.Gw)
					name, listed := names[h.LinkIndex]
					switch {
					case !ok || !listed:
						continue
					case gw.IsLinkLocalUnicast():
						skipped = append(skipped, fmt.Sprintf("%s%%%s: link-local default gateway (peer by a global address)", gw, name))
						continue
					}
					add(DiscoveredPeer{Address: gw.Unmap(), Link: name, Source: "default-gateway"})
				}
			}
		}
	}
	slices.SortFunc(peers, func(a, b DiscoveredPeer) int { return a.Address.Compare(b.Address) })
	return peers, skipped, nil
}
