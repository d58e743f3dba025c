package k8s

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrouter/podrouter/agent"
)

// Label and annotation keys podrouter reads from its Node.
const (
	AnnotationASN      = "podrouter.io/asn"
	AnnotationRouterID = "podrouter.io/router-id"
	AnnotationPeers    = "podrouter.io/peers"
	AnnotationPeerASN  = "podrouter.io/peer-asn"
	LabelRack          = "podrouter.io/rack"
	// LabelExcludeFromLB is the well-known label that takes a node out of
	// external load balancers; podrouter withdraws its pod CIDRs then too.
	LabelExcludeFromLB = "node.kubernetes.io/exclude-from-external-load-balancers"
)

// Peering is the per-node BGP overrides read from the Node. Zero values
// mean "keep the configured value".
type Peering struct {
	ASN        uint32     // local ASN; 0: configured bgp.asn
	Rack       int        // -1: no rack label
	RouterID   netip.Addr // invalid: configured node.routerID
	ExtraPeers []Peer     // in addition to the configured peers
	// PeerASN is the ASN of the peers bgp.autoPeers discovers (this
	// rack's ToRs); 0: the configured bgp.autoPeers.asn.
	PeerASN uint32
}

// Peer is one extra BGP neighbour from the podrouter.io/peers annotation.
type Peer struct {
	Address netip.Addr `json:"address"`
	ASN     uint32     `json:"asn"`
}

// Equal reports whether two Peerings are the same.
func (p Peering) Equal(q Peering) bool {
	return p.ASN == q.ASN && p.Rack == q.Rack && p.RouterID == q.RouterID && slices.Equal(p.ExtraPeers, q.ExtraPeers) &&
		p.PeerASN == q.PeerASN
}

// Translation is what one Node says.
type Translation struct {
	State   agent.NodeState
	Peering Peering
	// StateErr: the pod CIDRs could not be read; State must not be used.
	StateErr error
	// PeeringErrs: one per malformed override; Peering must not be used.
	PeeringErrs []error
}

// Translate turns a Node into podrouter's view of it. It is pure.
func Translate(n *corev1.Node, opts Options) Translation {
	var t Translation
	t.State, t.StateErr = nodeState(n, opts.DrainTaint)
	t.Peering, t.PeeringErrs = peering(n, opts)
	return t
}

// Options are the parts of Config that Translate uses.
type Options struct {
	DrainTaint string // "key" or "key=value"; "" disables
	ASNBase    uint32 // rack label -> local ASN ASNBase + rack; 0: not from the rack
	// PeerASNBase: rack label -> the discovered peers' ASN PeerASNBase +
	// rack. With both bases 0 the rack label is an error.
	PeerASNBase uint32
}

func nodeState(n *corev1.Node, drainTaint string) (agent.NodeState, error) {
	ns := agent.NodeState{Name: n.Name, Drained: drained(n, drainTaint)}
	cidrs := n.Spec.PodCIDRs
	if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
		cidrs = []string{n.Spec.PodCIDR}
	}
	seen := map[bool]bool{} // is4 → already have one
	for _, s := range cidrs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return agent.NodeState{}, fmt.Errorf("spec.podCIDRs: %q is not a CIDR", s)
		}
		if p.Masked() != p || p.Bits() == 0 {
			return agent.NodeState{}, fmt.Errorf("spec.podCIDRs: %s is not a pod CIDR", s)
		}
		if seen[p.Addr().Is4()] {
			return agent.NodeState{}, fmt.Errorf("spec.podCIDRs: more than one CIDR of the family of %s", s)
		}
		seen[p.Addr().Is4()] = true
		ns.PodCIDRs = append(ns.PodCIDRs, p)
	}
	return ns, nil
}

func drained(n *corev1.Node, drainTaint string) bool {
	if n.Spec.Unschedulable {
		return true
	}
	if _, ok := n.Labels[LabelExcludeFromLB]; ok {
		return true
	}
	if drainTaint == "" {
		return false
	}
	key, value, hasValue := strings.Cut(drainTaint, "=")
	for _, t := range n.Spec.Taints {
		if t.Key == key && (!hasValue || t.Value == value) {
			return true
		}
	}
	return false
}

func peering(n *corev1.Node, opts Options) (Peering, []error) {
	p := Peering{Rack: -1}
	var errs []error
	bad := func(kind, key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s %s: %s", kind, key, fmt.Sprintf(format, a...)))
	}
	if v, ok := n.Labels[LabelRack]; ok {
		rack, err := strconv.Atoi(v)
		beyond := func(base uint32) bool { return base != 0 && uint64(base)+uint64(rack) > 4294967294 }
		switch {
		case err != nil || rack < 0:
			bad("label", LabelRack, "%q is not a rack number (want a non-negative integer)", v)
		case opts.ASNBase == 0 && opts.PeerASNBase == 0:
			bad("label", LabelRack, "rack %d given but neither kubernetes.asnBase nor kubernetes.peerASNBase is configured", rack)
		case beyond(opts.ASNBase) || beyond(opts.PeerASNBase):
			bad("label", LabelRack, "rack %d puts asnBase %d / peerASNBase %d beyond the 4-byte ASN range", rack, opts.ASNBase, opts.PeerASNBase)
		default:
			p.Rack = rack
			if opts.ASNBase != 0 {
				p.ASN = opts.ASNBase + uint32(rack)
			}
			if opts.PeerASNBase != 0 {
				p.PeerASN = opts.PeerASNBase + uint32(rack)
			}
		}
	}
	if v, ok := n.Annotations[AnnotationPeerASN]; ok {
		asn, err := parseASN(v)
		if err != nil {
			bad("annotation", AnnotationPeerASN, "%v", err)
		} else {
			p.PeerASN = asn
		}
	}
	if v, ok := n.Annotations[AnnotationASN]; ok {
		asn, err := parseASN(v)
		if err != nil {
			bad("annotation", AnnotationASN, "%v", err)
		} else {
			p.ASN = asn
		}
	}
	if v, ok := n.Annotations[AnnotationRouterID]; ok {
		a, err := netip.ParseAddr(strings.TrimSpace(v))
		if err != nil || !usableRouterID(a) {
			bad("annotation", AnnotationRouterID, "%q is not an IPv4 address (unicast, not 0.0.0.0)", v)
		} else {
			p.RouterID = a
		}
	} else {
		for _, a := range n.Status.Addresses {
			if ip, err := netip.ParseAddr(a.Address); a.Type == corev1.NodeInternalIP && err == nil && usableRouterID(ip) {
				p.RouterID = ip
				break
			}
		}
	}
	if v, ok := n.Annotations[AnnotationPeers]; ok {
		peers, err := parsePeers(v)
		if err != nil {
			bad("annotation", AnnotationPeers, "%v", err)
		} else {
			p.ExtraPeers = peers
		}
	}
	return p, errs
}

func parseASN(v string) (uint32, error) {
	asn, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	if err != nil || asn == 0 || asn == 23456 || asn == 4294967295 {
		return 0, fmt.Errorf("%q is not a usable ASN (want 1..4294967294, not 23456)", v)
	}
	return uint32(asn), nil
}

// parsePeers reads the podrouter.io/peers JSON list strictly.
func parsePeers(v string) ([]Peer, error) {
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(v), &raw); err != nil {
		return nil, fmt.Errorf(`want a JSON list like [{"address":"192.0.2.1","asn":65001}]: %v`, err)
	}
	var out []Peer
	var errs []error
	for i, m := range raw {
		var addr string
		var asn uint32
		for _, k := range slices.Sorted(maps.Keys(m)) {
			val := m[k]
			var err error
			switch k {
			case "address":
				err = json.Unmarshal(val, &addr)
			case "asn":
				err = json.Unmarshal(val, &asn)
			default:
				err = errors.New("unknown field")
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("[%d].%s: %v", i, k, err))
			}
		}
		a, err := netip.ParseAddr(addr)
		if err != nil || a.Zone() != "" {
			errs = append(errs, fmt.Errorf("[%d].address: %q is not an IP address", i, addr))
			continue
		}
		if a = a.Unmap(); a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.IsLinkLocalUnicast() || a == broadcast4 {
			errs = append(errs, fmt.Errorf("[%d].address: %s is not a global unicast address", i, a))
			continue
		}
		if asn == 0 || asn == 23456 || asn == 4294967295 {
			errs = append(errs, fmt.Errorf("[%d].asn: %d is not a usable ASN", i, asn))
			continue
		}
		if slices.ContainsFunc(out, func(p Peer) bool { return p.Address == a.Unmap() }) {
			errs = append(errs, fmt.Errorf("[%d].address: %s listed twice", i, a))
			continue
		}
		out = append(out, Peer{Address: a.Unmap(), ASN: asn})
	}
	if len(errs) > 0 {
		return nil, joinErrs(errs)
	}
	return out, nil
}

var broadcast4 = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// usableRouterID: a BGP identifier is a non-zero 32-bit value (RFC 6286);
// podrouter takes it from an IPv4 address, which must also be unicast.
func usableRouterID(a netip.Addr) bool {
	return a.Is4() && !a.IsUnspecified() && !a.IsMulticast() && a != broadcast4
}

// joinErrs joins errors on one line ("; "), for Event messages.
func joinErrs(errs []error) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}
