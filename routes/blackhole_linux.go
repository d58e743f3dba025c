package routes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// SetBlackholes makes podrouter's blackhole routes exactly prefixes (the
// node's own pod CIDRs). The per-pod /32 and /128 routes the CNI plugin
// adds are more specific, so live pods are unaffected; traffic to an
// unassigned address of the node's pod CIDR is dropped here instead of
// bouncing between node and ToR (which routes the whole CIDR to us) until
// its TTL runs out. A route at the same destination that podrouter did not
// install is left alone and reported in the error. Idempotent.
func (i *Installer) SetBlackholes(ctx context.Context, prefixes []netip.Prefix) (changed bool, err error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if err := i.openLocked(); err != nil {
		return false, err
	}
	var errs []error
	for _, fam := range []Family{FamilyV4, FamilyV6} {
		var want []netip.Prefix
		for _, p := range prefixes {
			if p.Addr().Is4() == (fam == FamilyV4) {
				want = append(want, p.Masked())
			}
		}
		filter := &netlink.Route{Table: i.cfg.Table}
		rs, err := dump(ctx, i, "list routes", func() ([]netlink.Route, error) {
			return i.h.RouteListFiltered(nlFamily(fam), filter, netlink.RT_FILTER_TABLE)
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		have := map[netip.Prefix]netlink.Route{}
		foreign := map[netip.Prefix]bool{}
		for _, r := range rs {
			p, ok := prefixOf(r, fam)
			if !ok || r.Priority != i.cfg.Metric {
				continue
			}
			if r.Protocol == netlink.RouteProtocol(i.cfg.Protocol) && r.Type == unix.RTN_BLACKHOLE {
				have[p] = r
			} else if slices.Contains(want, p) {
				foreign[p] = true
			}
		}
		for _, p := range want {
			if _, ok := have[p]; ok {
				continue
			}
			if foreign[p] {
				errs = append(errs, fmt.Errorf("blackhole %s: a route podrouter did not install is there; left alone", p))
				continue
			}
			r := &netlink.Route{
				Dst:   &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
				Table: i.cfg.Table, Priority: i.cfg.Metric, Protocol: netlink.RouteProtocol(i.cfg.Protocol),
				Type: unix.RTN_BLACKHOLE, Family: nlFamily(fam),
			}
			i.counter.writes.Add(1)
			if err := i.h.RouteAdd(r); err != nil {
				i.counter.writeErrors.Add(1)
				errs = append(errs, fmt.Errorf("add blackhole %s: %w", p, err))
				continue
			}
			changed = true
			i.log.Info("pod cidr blackhole installed", "prefix", p)
		}
		for p, r := range have {
			if slices.Contains(want, p) {
				continue
			}
			i.counter.writes.Add(1)
			if err := i.h.RouteDel(&r); err != nil {
				i.counter.writeErrors.Add(1)
				errs = append(errs, fmt.Errorf("delete blackhole %s: %w", p, err))
				continue
			}
			changed = true
			i.log.Info("pod cidr blackhole removed", "prefix", p)
		}
	}
	return changed, errors.Join(errs...)
}
