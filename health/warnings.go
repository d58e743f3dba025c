package health

import (
	"fmt"
	"slices"
	"strings"
)

// CTFullPercent is the conntrack fill level that warns: past it the LRU
// starts evicting live flows under a burst of new ones.
const CTFullPercent = 90

// Warnings are the problems an operator should see in `podrouter status`.
func (s Snapshot) Warnings() []string {
	var out []string
	if s.PeersErr != "" {
		out = append(out, "bgp: "+s.PeersErr)
	}
	for _, p := range s.Peers {
		if p.BFD != BFDOff && p.BFD != BFDUp {
			out = append(out, fmt.Sprintf("peer %s: BFD is %s: a silent failure is detected by the hold timer only", p.Address, p.BFD))
		}
		if p.State != SessionEstablished {
			out = append(out, fmt.Sprintf("peer %s is %s", p.Address, p.State))
		}
		if p.AdminState == AdminPfxCt {
			out = append(out, fmt.Sprintf("peer %s is in max-prefix back-off", p.Address))
		}
	}
	for _, f := range s.Defaults() {
		if f.Blocked {
			out = append(out, f.Family+": a default route podrouter did not install sits at its table and metric; podrouter's is not installed")
		} else if f.Foreign {
			out = append(out, f.Family+": a default route podrouter did not install is present (left untouched)")
		}
		if len(f.Learned) == 0 && !f.Holding {
			out = append(out, f.Family+": no peer offers a default route")
		}
	}
	out = append(out, s.Datapath.Warnings()...)
	return append(out, s.Services.Warnings(s.Datapath.State)...)
}

// Warnings are the problems with Services on the fast path.
func (v Services) Warnings(dp DatapathState) []string {
	if dp != DatapathActive {
		return nil
	}
	var out []string
	if v.Error != "" {
		out = append(out, "Service CIDRs not handed to the fast path: "+v.Error)
	}
	if v.Learned && !v.Synced {
		out = append(out, "Service CIDRs not known yet (no ServiceCIDR list from the API server): ClusterIP traffic may bypass kube-proxy")
	}
	if v.Proxy == ProxyUnsupported {
		if v.KernelConntrack == "any" {
			out = append(out, fmt.Sprintf("kube-proxy runs in %s mode, which the fast path cannot follow precisely: "+
				"every flow nf_conntrack knows goes through the kernel stack (kernel conntrack mode any; untested with this mode)", v.ProxyMode))
		} else {
			out = append(out, fmt.Sprintf("kube-proxy runs in %s mode, which the fast path cannot follow: Service replies may bypass it; "+
				"set datapath.kernelConntrack to auto or any", v.ProxyMode))
		}
	}
	return out
}

// Warnings are the fast path's problems.
func (d Datapath) Warnings() []string {
	switch d.State {
	case DatapathUnavailable:
		return []string{"eBPF fast path unavailable, pod traffic on the kernel path: " + d.Reason}
	case DatapathActive:
	default:
		return nil
	}
	var out []string
	if d.Error != "" {
		out = append(out, "eBPF fast path: "+d.Error)
	}
	for _, u := range d.Uplinks {
		if !slices.Contains(d.FromNetwork, u) {
			out = append(out, fmt.Sprintf("eBPF fast path: no from-network program on uplink %s: traffic from the network takes the kernel path", u))
		}
	}
	if d.MapsError != "" {
		out = append(out, "eBPF fast path: map usage: "+d.MapsError)
	}
	for _, m := range d.Maps {
		if m.Capacity > 0 && m.Entries*100 >= m.Capacity*CTFullPercent && strings.HasPrefix(m.Map, "ct_") {
			out = append(out, fmt.Sprintf("conntrack map %s is %d%% full (%d of %d entries): new flows evict live ones",
				m.Map, m.Entries*100/m.Capacity, m.Entries, m.Capacity))
		}
	}
	return out
}
