package health

import (
	"fmt"
	"net/netip"
	"strings"
)

// Reasons of the PodrouterReady Node condition.
const (
	ReasonReady            = "RoutingReady"     // True: sessions up, default installed, fast path active or off
	ReasonDatapathFallback = "DatapathFallback" // True: routing works, eBPF fast path unavailable (kernel path)
	ReasonNoSessions       = "NoBGPSessions"    // False
	ReasonNoDefault        = "NoDefaultRoute"   // False
	ReasonNotReconciled    = "NotReconciled"    // False: the daemon has not reconciled yet
)

// Reasons of the Events a change of health records.
const (
	EventSessionUp      = "BGPSessionUp"
	EventSessionDown    = "BGPSessionDown"
	EventMaxPrefix      = "BGPMaxPrefixExceeded"
	EventForeignDefault = "ForeignDefaultRoute"
	EventFallback       = "DatapathFallback"
	EventDatapathActive = "DatapathActive"
	EventProxyMode      = "KubeProxyModeUnsupported"
)

// Condition is the PodrouterReady Node condition.
type Condition struct {
	Ready   bool // the condition's status: True or False
	Reason  string
	Message string
}

// Condition renders the PodrouterReady condition.
func (s Snapshot) Condition() Condition {
	up := s.Established()
	v4, v6 := len(s.DefaultV4.Installed), len(s.DefaultV6.Installed)
	parts := []string{fmt.Sprintf("BGP sessions %d/%d established", up, len(s.Peers))}
	if v4 == 0 && v6 == 0 {
		parts = append(parts, "no default route installed")
	} else {
		parts = append(parts, fmt.Sprintf("default route via %d IPv4 and %d IPv6 next hops", v4, v6))
	}
	if s.DefaultV4.Foreign || s.DefaultV6.Foreign {
		parts = append(parts, "a default route podrouter did not install is present")
	}
	dp := "datapath " + s.Datapath.State.String()
	if s.Datapath.State == DatapathUnavailable {
		dp += " (kernel path fallback"
		if s.Datapath.Reason != "" {
			dp += ": " + s.Datapath.Reason
		}
		dp += ")"
	}
	parts = append(parts, dp)
	c := Condition{Message: strings.Join(parts, "; ")}
	switch {
	case s.Reconcile.Count == 0:
		c.Reason = ReasonNotReconciled
	case up == 0:
		c.Reason = ReasonNoSessions
	case v4 == 0 && v6 == 0:
		c.Reason = ReasonNoDefault
	case s.Datapath.State == DatapathUnavailable:
		c.Ready, c.Reason = true, ReasonDatapathFallback
	default:
		c.Ready, c.Reason = true, ReasonReady
	}
	return c
}

// Event is one Event to record on the Node.
type Event struct {
	Warning bool // type Warning; Normal otherwise
	Reason  string
	Message string
}

// Events returns the Events for the change from prev to cur. prev is nil
// on the first look: then only what is noteworthy on its own (sessions
// up, a foreign default, a fallback) is reported.
func Events(prev *Snapshot, cur Snapshot) []Event {
	var out []Event
	was := map[netip.Addr]Peer{}
	if prev != nil {
		for _, p := range prev.Peers {
			was[p.Address] = p
		}
	}
	for _, p := range cur.Peers {
		w, known := was[p.Address]
		up, wasUp := p.State == SessionEstablished, w.State == SessionEstablished
		switch {
		case up && !wasUp:
			out = append(out, Event{false, EventSessionUp, fmt.Sprintf("BGP session with %s established", p.Address)})
		case !up && wasUp:
			out = append(out, Event{true, EventSessionDown, fmt.Sprintf("BGP session with %s went down", p.Address)})
		}
		if p.MaxPrefixTrips > w.MaxPrefixTrips && (known || prev == nil) {
			out = append(out, Event{true, EventMaxPrefix,
				fmt.Sprintf("peer %s exceeded its max-prefix limit (%d times so far); session torn down until the restart timer re-enables it", p.Address, p.MaxPrefixTrips)})
		}
	}
	if prev != nil {
		now := map[netip.Addr]bool{}
		for _, p := range cur.Peers {
			now[p.Address] = true
		}
		for _, p := range prev.Peers {
			if p.State == SessionEstablished && !now[p.Address] {
				out = append(out, Event{false, EventSessionDown, fmt.Sprintf("BGP session with %s removed", p.Address)})
			}
		}
	}
	foreign := func(s Snapshot) bool { return s.DefaultV4.Foreign || s.DefaultV6.Foreign }
	if foreign(cur) && (prev == nil || !foreign(*prev)) {
		out = append(out, Event{true, EventForeignDefault,
			"a default route podrouter did not install is present; podrouter leaves it alone, and it may shadow the BGP-learned default"})
	}
	dp := cur.Datapath.State
	if dp == DatapathUnavailable && (prev == nil || prev.Datapath.State != DatapathUnavailable) {
		reason := cur.Datapath.Reason
		if reason == "" {
			reason = "unknown reason"
		}
		out = append(out, Event{true, EventFallback, "eBPF fast path unavailable, forwarding on the kernel path: " + reason})
	}
	if v := cur.Services; v.Proxy == ProxyUnsupported && (prev == nil || prev.Services.Proxy != ProxyUnsupported) {
		out = append(out, Event{true, EventProxyMode, fmt.Sprintf("kube-proxy runs in %s mode, which the fast path cannot follow; "+
			"kernel conntrack mode %s: see podrouter status", v.ProxyMode, orNone(v.KernelConntrack))})
	}
	if prev != nil && prev.Datapath.State == DatapathUnavailable && dp == DatapathActive {
		out = append(out, Event{false, EventDatapathActive, "eBPF fast path active again"})
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "none (fast path not running)"
	}
	return s
}
