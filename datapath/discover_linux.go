package datapath

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// retryDump retries a netlink dump interrupted by concurrent changes.
func retryDump[T any](f func() (T, error)) (T, error) {
	var v T
	var err error
	for range 5 {
		v, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	return v, err
}

func toAddr(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}

// usableNeigh reports whether a neighbour entry carries a MAC worth using.
func usableNeigh(n netlink.Neigh) bool {
	const ok = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY |
		netlink.NUD_PROBE | netlink.NUD_PERMANENT | netlink.NUD_NOARP
	return n.State&ok != 0 && len(n.HardwareAddr) == 6
}

// peerMAC is the MAC of the pod's end of host veth l, read from the pod's
// network namespace (RTM_GETLINK of the peer's ifindex with
// IFLA_TARGET_NETNSID, Linux >= 4.20; vishvananda/netlink has no call for
// it, so the request is built with its nl package). nil when the kernel
// does not say where the peer is; the neighbour table is then the source.
func peerMAC(l netlink.Link) net.HardwareAddr {
	a := l.Attrs()
	if a.ParentIndex <= 0 || a.NetNsID < 0 {
		return nil
	}
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(a.ParentIndex)
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_TARGET_NETNSID, nl.Uint32Attr(uint32(a.NetNsID))))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil || len(msgs) != 1 {
		return nil
	}
	peer, err := netlink.LinkDeserialize(nil, msgs[0])
	if err != nil || len(peer.Attrs().HardwareAddr) != 6 {
		return nil
	}
	return peer.Attrs().HardwareAddr
}

func neighMAC(ifindex int, a netip.Addr) net.HardwareAddr {
	fam := netlink.FAMILY_V4
	if a.Is6() {
		fam = netlink.FAMILY_V6
	}
	neighs, err := retryDump(func() ([]netlink.Neigh, error) { return netlink.NeighList(ifindex, fam) })
	if err != nil {
		return nil
	}
	for _, n := range neighs {
		if na, ok := toAddr(n.IP); ok && na == a && usableNeigh(n) {
			return n.HardwareAddr
		}
	}
	return nil
}

// discoverEndpoints finds the pods the CNI ptp plugin created: veths whose
// host side carries a /32 or /128 route inside one of podCIDRs. The pod MAC
// is the veth peer's (read in the pod's namespace), else the neighbour
// table's; it is remembered in macs (so a neighbour entry
// the kernel garbage-collects, which the fast path never refreshes, does
// not move the pod's flows back to the kernel path mid-connection); until
// it is known PodMAC stays empty and the pod stays wholly on the kernel
// path (see applyLocked).
func discoverEndpoints(ctx context.Context, podCIDRs []netip.Prefix, macs *podMACs) ([]Endpoint, error) {
	if len(podCIDRs) == 0 {
		return nil, nil
	}
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	byLink := map[int]*Endpoint{}
	for _, r := range routes {
		// Kernel-made routes are the node's own addresses (ptp puts the
		// pod gateway, e.g. fd00:10:0:1::1/128, on every host veth), not pods.
		if r.Dst == nil || r.LinkIndex <= 0 || r.Gw != nil || r.Protocol == unix.RTPROT_KERNEL {
			continue
		}
		ones, bits := r.Dst.Mask.Size()
		if ones != bits {
			continue
		}
		a, ok := toAddr(r.Dst.IP)
		if !ok || !inAny(podCIDRs, a) {
			continue
		}
		ep := byLink[r.LinkIndex]
		if ep == nil {
			l, err := netlink.LinkByIndex(r.LinkIndex)
			if err != nil || l.Type() != "veth" {
				continue
			}
			ep = &Endpoint{IfName: l.Attrs().Name, IfIndex: l.Attrs().Index, HostMAC: l.Attrs().HardwareAddr,
				PodMAC: peerMAC(l)}
			byLink[r.LinkIndex] = ep
		}
		ep.Addrs = append(ep.Addrs, a)
		if ep.PodMAC == nil {
			ep.PodMAC = neighMAC(ep.IfIndex, a)
		}
	}
	out := make([]Endpoint, 0, len(byLink))
	for _, ep := range byLink {
		ep.PodMAC = macs.remember(ep.IfIndex, ep.HostMAC, ep.PodMAC)
		out = append(out, *ep)
	}
	macs.keep(byLink)
	sort.Slice(out, func(i, j int) bool { return out[i].IfName < out[j].IfName })
	return out, ctx.Err()
}

func inAny(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// nodeAddrs returns every non-link-local address configured in this netns.
func nodeAddrs() ([]netip.Addr, error) {
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if ip, ok := toAddr(a.IP); ok && !ip.IsLinkLocalUnicast() {
			out = append(out, ip)
		}
	}
	return out, nil
}

// resolveNextHops fills in uplink index and MACs; unresolvable next hops
// are left out (their traffic takes the FIB fallback).
func resolveNextHops(nhs []NextHop) ([]resolvedNextHop, error) {
	var out []resolvedNextHop
	var errs []error
	for _, nh := range nhs {
		l, err := netlink.LinkByName(nh.Uplink)
		if err != nil {
			errs = append(errs, fmt.Errorf("next hop %s: uplink %q: %w", nh.Gateway, nh.Uplink, err))
			continue
		}
		src, dst := nh.SrcMAC, nh.DstMAC
		if src == nil {
			src = l.Attrs().HardwareAddr
		}
		if dst == nil {
			dst = neighMAC(l.Attrs().Index, nh.Gateway.Unmap())
		}
		s, ok1 := mac6(src)
		d, ok2 := mac6(dst)
		if !ok1 || !ok2 {
			continue
		}
		out = append(out, resolvedNextHop{ifindex: l.Attrs().Index, v6: nh.Gateway.Unmap().Is6(), src: s, dst: d})
	}
	return out, errors.Join(errs...)
}

// watch kicks on every link, route and neighbour change until ctx ends.
func watch(ctx context.Context, kick func()) error {
	done := make(chan struct{})
	go func() { <-ctx.Done(); close(done) }()
	links := make(chan netlink.LinkUpdate, 64)
	routes := make(chan netlink.RouteUpdate, 64)
	neighs := make(chan netlink.NeighUpdate, 64)
	if err := netlink.LinkSubscribe(links, done); err != nil {
		return fmt.Errorf("subscribe links: %w", err)
	}
	if err := netlink.RouteSubscribe(routes, done); err != nil {
		return fmt.Errorf("subscribe routes: %w", err)
	}
	if err := netlink.NeighSubscribe(neighs, done); err != nil {
		return fmt.Errorf("subscribe neighbours: %w", err)
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-links:
				if !ok {
					return
				}
			case _, ok := <-routes:
				if !ok {
					return
				}
			case _, ok := <-neighs:
				if !ok {
					return
				}
			}
			kick()
		}
	}()
	return nil
}
