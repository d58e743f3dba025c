package api

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/podrouter/podrouter/health"
)

// Status is GET /v1/status (and `podrouter status -o json`).
type Status struct {
	Node          string         `json:"node"`
	RouterID      string         `json:"routerID"`
	ASN           uint32         `json:"asn"`
	PodCIDRs      []netip.Prefix `json:"podCIDRs"`
	Advertised    []netip.Prefix `json:"advertised"`
	Drain         string         `json:"drain,omitempty"` // "depreferred (withdrawn in 12s)", "withdrawn"
	Peers         []Peer         `json:"peers"`
	Defaults      []DefaultRoute `json:"defaults"`
	LastReconcile time.Time      `json:"lastReconcile"`
	ReconcileTook string         `json:"reconcileDuration"`
	Reconciles    uint64         `json:"reconciles"`
	Errors        uint64         `json:"reconcileErrors"`
	LastError     string         `json:"lastError,omitempty"`
	FastPath      FastPath       `json:"fastPath"`
	Services      Services       `json:"services"`
	Warnings      []string       `json:"warnings,omitempty"`
}

// Services is how kube-proxy's Services are kept working with the fast
// path: the destinations handed to the kernel stack and what was found of
// kube-proxy.
type Services struct {
	// ServiceCIDRs are the cluster's, from its ServiceCIDR objects
	// (Learned); Synced once the first list arrived.
	Learned      bool           `json:"learned"`
	Synced       bool           `json:"synced,omitempty"`
	ServiceCIDRs []netip.Prefix `json:"serviceCIDRs,omitempty"`
	// PassCIDRs are in the fast path's pass-to-stack map now.
	PassCIDRs []netip.Prefix `json:"passCIDRs,omitempty"`
	Error     string         `json:"error,omitempty"`
	// KubeProxy: not-probed, absent, supported, unsupported; Mode as
	// kube-proxy reports it.
	KubeProxy      health.ProxyState `json:"kubeProxy"`
	KubeProxyMode  string            `json:"kubeProxyMode,omitempty"`
	KubeProxyError string            `json:"kubeProxyError,omitempty"`
	// KernelConntrack is the fast path's nf_conntrack lookup mode in
	// force (nat, any), chosen from kube-proxy's mode when Auto.
	KernelConntrack     string `json:"kernelConntrack,omitempty"`
	KernelConntrackAuto bool   `json:"kernelConntrackAuto,omitempty"`
}

// Peer is one BGP neighbour.
type Peer struct {
	Address        netip.Addr          `json:"address"`
	ASN            uint32              `json:"asn"`
	State          health.SessionState `json:"state"`      // idle … established
	AdminState     health.AdminState   `json:"adminState"` // up, down, pfx_ct
	Uptime         string              `json:"uptime"`
	Received       uint64              `json:"received"`
	Accepted       uint64              `json:"accepted"`
	Advertised     uint64              `json:"advertised"`
	MaxPrefixTrips uint64              `json:"maxPrefixTrips"`
	BFD            health.BFDState     `json:"bfd,omitempty"` // absent: BFD off; down, init, up, admin-down
	LastError      string              `json:"lastError,omitempty"`
}

// DefaultRoute is the default route of one family.
type DefaultRoute struct {
	Family    string       `json:"family"` // ipv4, ipv6
	Learned   []netip.Addr `json:"learned"`
	Installed []netip.Addr `json:"installed"`
	Skipped   []string     `json:"skipped,omitempty"`
	Holding   bool         `json:"startupHold,omitempty"`
	Foreign   bool         `json:"foreignDefaultPresent,omitempty"`
	Blocked   bool         `json:"blockedByForeignDefault,omitempty"`
}

// Datapath modes (FastPath.Mode): where pod traffic is forwarded.
const (
	ModeEBPF   = "ebpf"   // the fast path's programs forward it
	ModeKernel = "kernel" // the kernel's forwarding path (and netfilter)
)

// FastPath is the eBPF fast path.
type FastPath struct {
	Enabled  bool                 `json:"enabled"`
	State    health.DatapathState `json:"state"`
	Mode     string               `json:"mode"` // ModeEBPF or ModeKernel
	PinDir   string               `json:"pinDir,omitempty"`
	Reason   string               `json:"reason,omitempty"` // why the kernel path is used
	Cause    string               `json:"cause,omitempty"`  // Reason without the "unavailable" wrapping
	Attached []string             `json:"attached,omitempty"`
	LastErr  string               `json:"lastError,omitempty"` // last reconcile problem while active
	// Uplinks are the configured uplinks; FromNetwork and FromEndpoint
	// split Attached by program.
	Uplinks      []string `json:"uplinks,omitempty"`
	FromNetwork  []string `json:"fromNetwork,omitempty"`
	FromEndpoint []string `json:"fromEndpoint,omitempty"`
	// Maps is the usage of the conntrack and endpoint maps (while active).
	Maps    []MapUsage `json:"maps,omitempty"`
	MapsErr string     `json:"mapsError,omitempty"`
}

// MapUsage is how full one BPF map is.
type MapUsage struct {
	Map      string `json:"map"` // ct_tcp, ct_other, endpoints
	Entries  int    `json:"entries"`
	Capacity int    `json:"capacity"`
}

// Usage returns the named map's usage.
func (f FastPath) Usage(name string) (MapUsage, bool) {
	for _, m := range f.Maps {
		if m.Map == name {
			return m, true
		}
	}
	return MapUsage{}, false
}

// StatusOf renders the daemon's health snapshot as the local API's status.
func StatusOf(s health.Snapshot) Status {
	r := Status{
		Node: s.Node, RouterID: s.RouterID.String(), ASN: s.ASN,
		PodCIDRs: s.PodCIDRs, Advertised: s.Advertised,
		LastReconcile: s.Reconcile.At, ReconcileTook: s.Reconcile.Duration.String(),
		Reconciles: s.Reconcile.Count, Errors: s.Reconcile.Errors, LastError: s.Reconcile.Error,
		Warnings: s.Warnings(),
	}
	switch s.Drain.State {
	case health.DrainDepreferred:
		r.Drain = fmt.Sprintf("depreferred (withdrawn in %s)", s.Drain.WithdrawIn.Round(time.Second))
	case health.DrainWithdrawn:
		r.Drain = "withdrawn"
	}
	for _, p := range s.Peers {
		r.Peers = append(r.Peers, Peer{
			Address: p.Address, ASN: p.ASN, State: p.State, AdminState: p.AdminState,
			Uptime: p.Uptime.String(), Received: p.Received, Accepted: p.Accepted, Advertised: p.Advertised,
			MaxPrefixTrips: p.MaxPrefixTrips, BFD: p.BFD, LastError: p.LastError,
		})
	}
	for _, f := range s.Defaults() {
		r.Defaults = append(r.Defaults, DefaultRoute{
			Family: f.Family, Learned: f.Learned, Installed: f.Installed, Skipped: f.Skipped,
			Holding: f.Holding, Foreign: f.Foreign, Blocked: f.Blocked,
		})
	}
	d := s.Datapath
	r.FastPath = FastPath{
		Enabled: d.State != health.DatapathDisabled, State: d.State, Mode: ModeKernel,
		Reason: d.Reason, Cause: d.Cause, LastErr: d.Error, PinDir: d.PinDir,
		Uplinks: d.Uplinks, FromNetwork: d.FromNetwork, FromEndpoint: d.FromEndpoint, MapsErr: d.MapsError,
	}
	if d.State == health.DatapathActive {
		r.FastPath.Mode = ModeEBPF
	}
	r.FastPath.Attached = slices.Sorted(slices.Values(slices.Concat(d.FromNetwork, d.FromEndpoint)))
	for _, m := range d.Maps {
		r.FastPath.Maps = append(r.FastPath.Maps, MapUsage(m))
	}
	v := s.Services
	r.Services = Services{
		Learned: v.Learned, Synced: v.Synced, ServiceCIDRs: v.ServiceCIDRs, PassCIDRs: v.PassCIDRs, Error: v.Error,
		KubeProxy: v.Proxy, KubeProxyMode: v.ProxyMode, KubeProxyError: v.ProxyError,
		KernelConntrack: v.KernelConntrack, KernelConntrackAuto: v.KernelConntrackAuto,
	}
	return r
}

// DrainReply answers POST /v1/drain.
type DrainReply struct {
	Result        string `json:"result"`        // "draining"
	WithdrawAfter string `json:"withdrawAfter"` // the deprefer phase before the withdraw
}
