package k8s

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// ConditionType is the Node condition podrouter maintains.
const ConditionType corev1.NodeConditionType = "PodrouterReady"

// Condition reasons.
const (
	ReasonReady            = "RoutingReady"     // True: sessions up, default installed, fast path active or off
	ReasonDatapathFallback = "DatapathFallback" // True: routing works, eBPF fast path unavailable (kernel path)
	ReasonNoSessions       = "NoBGPSessions"    // False
	ReasonNoDefault        = "NoDefaultRoute"   // False
	ReasonNotReconciled    = "NotReconciled"    // False: the daemon has not reconciled yet
)

// Event reasons.
const (
	EventSessionUp       = "BGPSessionUp"
	EventSessionDown     = "BGPSessionDown"
	EventMaxPrefix       = "BGPMaxPrefixExceeded"
	EventForeignDefault  = "ForeignDefaultRoute"
	EventFallback        = "DatapathFallback"
	EventDatapathActive  = "DatapathActive"
	EventDrained         = "Drained"
	EventUndrained       = "Undrained"
	EventInvalidOverride = "InvalidPeeringOverride"
	EventInvalidNode     = "InvalidNodeSpec"
	EventCNIConfig       = "CNIConfigWritten"
	EventPasswordRotated = "BGPPasswordRotated"
	EventPasswordInvalid = "BGPPasswordInvalid"
)

// Datapath modes (Health.Datapath).
const (
	DatapathDisabled    = "disabled"
	DatapathStarting    = "starting"
	DatapathActive      = "active"
	DatapathUnavailable = "unavailable" // fallback: kernel path only
)

// Health is the daemon's state as the Node condition and Events show it.
// The daemon fills it (HealthSource); the adapter only reads it.
type Health struct {
	Reconciled     bool // at least one reconcile has run
	Peers          []PeerHealth
	DefaultV4      int  // installed next hops of the IPv4 default
	DefaultV6      int  // installed next hops of the IPv6 default
	ForeignDefault bool // a default route podrouter did not install exists
	Datapath       string
	DatapathReason string // why the fast path is unavailable
}

// PeerHealth is one BGP neighbour.
type PeerHealth struct {
	Address        netip.Addr
	Established    bool
	MaxPrefixTrips uint64
}

// condition renders the PodrouterReady condition's status, reason and
// message from h.
func condition(h Health) (corev1.ConditionStatus, string, string) {
	up := 0
	for _, p := range h.Peers {
		if p.Established {
			up++
		}
	}
	var parts []string
	parts = append(parts, fmt.Sprintf("BGP sessions %d/%d established", up, len(h.Peers)))
	switch {
	case h.DefaultV4 == 0 && h.DefaultV6 == 0:
		parts = append(parts, "no default route installed")
	default:
		parts = append(parts, fmt.Sprintf("default route via %d IPv4 and %d IPv6 next hops", h.DefaultV4, h.DefaultV6))
	}
	if h.ForeignDefault {
		parts = append(parts, "a default route podrouter did not install is present")
	}
	dp := "datapath " + orDefault(h.Datapath, DatapathDisabled)
	if h.Datapath == DatapathUnavailable {
		dp += " (kernel path fallback"
		if h.DatapathReason != "" {
			dp += ": " + h.DatapathReason
		}
		dp += ")"
	}
	parts = append(parts, dp)
	msg := strings.Join(parts, "; ")
	switch {
	case !h.Reconciled:
		return corev1.ConditionFalse, ReasonNotReconciled, msg
	case up == 0:
		return corev1.ConditionFalse, ReasonNoSessions, msg
	case h.DefaultV4 == 0 && h.DefaultV6 == 0:
		return corev1.ConditionFalse, ReasonNoDefault, msg
	case h.Datapath == DatapathUnavailable:
		return corev1.ConditionTrue, ReasonDatapathFallback, msg
	}
	return corev1.ConditionTrue, ReasonReady, msg
}

// event is one Event to record on the Node.
type event struct {
	Type, Reason, Message string
}

// healthEvents returns the Events for the change from prev to cur. prev
// is nil on the first look: then only what is noteworthy on its own
// (sessions up, foreign default, fallback) is reported.
func healthEvents(prev *Health, cur Health) []event {
	var out []event
	was := map[netip.Addr]PeerHealth{}
	if prev != nil {
		for _, p := range prev.Peers {
			was[p.Address] = p
		}
	}
	for _, p := range cur.Peers {
		w, known := was[p.Address]
		switch {
		case p.Established && !w.Established:
			out = append(out, event{corev1.EventTypeNormal, EventSessionUp, fmt.Sprintf("BGP session with %s established", p.Address)})
		case !p.Established && w.Established:
			out = append(out, event{corev1.EventTypeWarning, EventSessionDown, fmt.Sprintf("BGP session with %s went down", p.Address)})
		}
		if p.MaxPrefixTrips > w.MaxPrefixTrips && (known || prev == nil) {
			out = append(out, event{corev1.EventTypeWarning, EventMaxPrefix,
				fmt.Sprintf("peer %s exceeded its max-prefix limit (%d times so far); session torn down until the restart timer re-enables it", p.Address, p.MaxPrefixTrips)})
		}
	}
	if prev != nil {
		now := map[netip.Addr]bool{}
		for _, p := range cur.Peers {
			now[p.Address] = true
		}
		for _, p := range prev.Peers {
			if p.Established && !now[p.Address] {
				out = append(out, event{corev1.EventTypeNormal, EventSessionDown, fmt.Sprintf("BGP session with %s removed", p.Address)})
			}
		}
	}
	if cur.ForeignDefault && (prev == nil || !prev.ForeignDefault) {
		out = append(out, event{corev1.EventTypeWarning, EventForeignDefault,
			"a default route podrouter did not install is present; podrouter leaves it alone, and it may shadow the BGP-learned default"})
	}
	if cur.Datapath == DatapathUnavailable && (prev == nil || prev.Datapath != DatapathUnavailable) {
		out = append(out, event{corev1.EventTypeWarning, EventFallback,
			"eBPF fast path unavailable, forwarding on the kernel path: " + orDefault(cur.DatapathReason, "unknown reason")})
	}
	if prev != nil && prev.Datapath == DatapathUnavailable && cur.Datapath == DatapathActive {
		out = append(out, event{corev1.EventTypeNormal, EventDatapathActive, "eBPF fast path active again"})
	}
	return out
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
