package health

import (
	"net/netip"
	"time"
)

// Snapshot is the daemon's state at one moment: BGP sessions, default
// routes, the fast path and the reconcile loop. The daemon builds it from
// its parts; /metrics, /readyz, the PodrouterReady Node condition and
// Events, and `podrouter status` all render from it.
type Snapshot struct {
	Node     string
	RouterID netip.Addr
	ASN      uint32
	// PodCIDRs are the node's pod CIDRs now (the Node's in Kubernetes
	// mode, which may arrive after start).
	PodCIDRs   []netip.Prefix
	Advertised []netip.Prefix
	Drain      Drain
	Peers      []Peer
	// PeersErr says why Peers could not be listed ("" when they could).
	PeersErr  string
	DefaultV4 Default
	DefaultV6 Default
	Reconcile Reconcile
	Datapath  Datapath
	Services  Services
}

// Services is how the node keeps kube-proxy's Services working with the
// fast path: which destinations go to the kernel stack (where kube-proxy
// translates them), and what was found of kube-proxy.
type Services struct {
	// Learned: the Service CIDRs come from the cluster's ServiceCIDR
	// objects; Synced once the first list arrived.
	Learned, Synced bool
	ServiceCIDRs    []netip.Prefix
	// PassCIDRs are the destinations the fast path hands to the stack
	// (datapath.passCIDRs and the Service CIDRs), as in its map.
	PassCIDRs []netip.Prefix
	// Error is the last failure to hand PassCIDRs to the fast path.
	Error string
	// ProxyMode is what kube-proxy reported (e.g. iptables); ProxyError
	// why nothing did (ProxyAbsent).
	Proxy      ProxyState
	ProxyMode  string
	ProxyError string
	// KernelConntrack is the fast path's nf_conntrack lookup mode in force
	// ("nat" or "any"; "" when the fast path is not running), and
	// KernelConntrackAuto whether podrouter chooses it from kube-proxy's
	// mode (datapath.kernelConntrack: auto).
	KernelConntrack     string
	KernelConntrackAuto bool
}

// Peer is one BGP neighbour.
type Peer struct {
	Address         netip.Addr
	ASN             uint32
	State           SessionState
	AdminState      AdminState
	Uptime          time.Duration
	Received        uint64 // prefixes received (pre-policy Adj-RIB-In)
	Accepted        uint64 // prefixes accepted by the import policy
	Advertised      uint64
	MaxPrefixTrips  uint64
	Flaps           uint32
	UpdatesIn       uint64 // UPDATE messages received
	UpdatesOut      uint64 // UPDATE messages sent
	GracefulRestart GRState
	BFD             BFDState
	LastError       string
}

// AFI is the session's address family, "ipv4" or "ipv6": one session per
// family, the peer address's.
func (p Peer) AFI() string {
	if p.Address.Unmap().Is6() {
		return "ipv6"
	}
	return "ipv4"
}

// Drain is the drain state of the pod CIDRs' advertisement.
type Drain struct {
	State DrainState
	// WithdrawIn is when depreferred pod CIDRs are withdrawn.
	WithdrawIn time.Duration
}

// Default is the default route of one address family.
type Default struct {
	Learned   []netip.Addr // next hops peers offer
	Installed []netip.Addr // next hops of podrouter's route in the kernel
	Skipped   []string     // offered gateways left out, with the reason
	Holding   bool         // the startup hold keeps the previous instance's route
	Foreign   bool         // a default route podrouter did not install is present
	Blocked   bool         // ...at podrouter's table and metric: ours is not installed
}

// FamilyDefault is the default route of the named family.
type FamilyDefault struct {
	Family string // "ipv4", "ipv6"
	Default
}

// Defaults are the default routes, IPv4 first.
func (s Snapshot) Defaults() []FamilyDefault {
	return []FamilyDefault{{"ipv4", s.DefaultV4}, {"ipv6", s.DefaultV6}}
}

// Reconcile is the outcome of the reconcile loop.
type Reconcile struct {
	Count    uint64 // passes completed
	Errors   uint64 // passes that ended with an error
	At       time.Time
	Duration time.Duration
	Error    string // the last pass's error, "" when it succeeded
	// PeersOnly says the last pass failed only on what depends on the
	// BGP peers (reading the defaults they offer): the configuration
	// itself was applied.
	PeersOnly bool
}

// Datapath is the eBPF fast path.
type Datapath struct {
	State DatapathState
	// Reason is why the fast path is unavailable (the full error), Cause
	// the underlying problem without the "unavailable" wrapping.
	Reason, Cause string
	PinDir        string
	// Uplinks are the configured uplinks; FromNetwork and FromEndpoint
	// the interfaces carrying each program.
	Uplinks      []string
	FromNetwork  []string
	FromEndpoint []string
	// Error is the last reconcile problem while active.
	Error string
	// Maps is the usage of the conntrack and endpoint maps (while active).
	Maps      []MapUsage
	MapsError string
	// Conntrack GC: runs, entries removed, duration of the last run.
	GCRuns, GCRemoved uint64
	GCLastDuration    time.Duration
	// Drift repaired: map entries changed or deleted behind podrouter's
	// back, hooks found detached and attached again.
	RepairedEntries, RepairedHooks uint64
}

// MapUsage is how full one BPF map is.
type MapUsage struct {
	Map      string // "ct_tcp", "ct_other" or "endpoints"
	Entries  int
	Capacity int
}

// Established counts the established sessions.
func (s Snapshot) Established() int {
	n := 0
	for _, p := range s.Peers {
		if p.State == SessionEstablished {
			n++
		}
	}
	return n
}
