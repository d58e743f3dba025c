package metrics

import (
	"context"
	"net/netip"
	"time"
)

// Sources are the subsystems metrics and readiness are read from. Peers,
// Agent and Routes are required; a nil Datapath means the fast path is
// disabled by configuration.
type Sources struct {
	Peers    PeerSource
	Agent    AgentSource
	Routes   RouteSource
	Datapath DatapathSource
}

// PeerSource lists the configured BGP neighbours with their live state.
type PeerSource interface {
	Peers(ctx context.Context) ([]Peer, error)
}

// AgentSource reports the outcome of the reconcile loop.
type AgentSource interface {
	AgentState() AgentState
}

// RouteSource reports the route installer's cumulative counters.
type RouteSource interface {
	RouteStats() RouteStats
}

// DatapathSource reports the eBPF fast path.
type DatapathSource interface {
	DatapathState() DatapathState
	// DatapathCounters are the per (direction, reason) packet and byte
	// counters; they are cumulative.
	DatapathCounters() ([]DatapathCounter, error)
	// MapUsage is the fill level of the maps that can run full
	// (conntrack). It may be answered from a short-lived cache.
	MapUsage() ([]MapUsage, error)
}

// Peer is one BGP session.
type Peer struct {
	Address        netip.Addr
	ASN            uint32
	AFI            string // "ipv4" or "ipv6": the session's address family
	State          string // idle, connect, active, opensent, openconfirm, established
	Uptime         time.Duration
	Flaps          uint64
	Received       uint64 // prefixes in the pre-policy Adj-RIB-In
	Accepted       uint64 // prefixes accepted by the import policy
	Advertised     uint64
	MaxPrefixTrips uint64
	UpdatesIn      uint64 // UPDATE messages received
	UpdatesOut     uint64 // UPDATE messages sent
	GRState        string // disabled, enabled, peer-restarting, local-restarting
	BFD            string // "" (BFD off for this peer), down, init, up, admin-down
}

// GRStates are the values of the state label of
// podrouter_bgp_graceful_restart_state.
var GRStates = []string{"disabled", "enabled", "peer-restarting", "local-restarting"}

// SessionStates are the values of the state label of
// podrouter_bgp_session_state, in FSM order.
var SessionStates = []string{"idle", "connect", "active", "opensent", "openconfirm", "established"}

// AgentState is the reconcile loop's state.
type AgentState struct {
	Reconciles   uint64 // reconcile passes completed
	Errors       uint64 // passes that ended with an error
	LastAt       time.Time
	LastDuration time.Duration
	LastError    string
	// LastErrorPeerOnly says the last pass failed only on state that
	// depends on BGP peers (for example reading learned defaults): the
	// configuration itself was applied.
	LastErrorPeerOnly bool
	Families          []FamilyState
}

// FamilyState is the default route of one address family.
type FamilyState struct {
	Family          string // "ipv4" or "ipv6"
	Learned         int    // next hops offered by peers
	Installed       int    // next hops of podrouter's default route in the kernel
	Holding         bool   // startup hold keeps the previous instance's route
	ForeignPresent  bool   // a default route podrouter does not own exists
	ForeignBlocking bool   // ...at podrouter's metric, so ours is not installed
}

// RouteStats are the route installer's cumulative counters.
type RouteStats struct {
	Installs         uint64
	Removals         uint64
	DriftMissing     uint64
	DriftChanged     uint64
	ForeignSeen      uint64
	Writes           uint64
	WriteErrors      uint64
	DumpsInterrupted uint64
	Resubscriptions  uint64
}

// DatapathMode is what the fast path is doing.
type DatapathMode string

// Datapath modes.
const (
	DatapathLoaded   DatapathMode = "loaded"   // programs loaded; attached where possible
	DatapathStarting DatapathMode = "starting" // not loaded yet, no failure either
	DatapathFallback DatapathMode = "fallback" // load failed; the kernel path forwards
	DatapathDisabled DatapathMode = "disabled" // turned off by configuration
)

// DatapathState is the fast path's state.
type DatapathState struct {
	Mode DatapathMode
	// Conntrack GC: runs, entries removed, duration of the last run.
	GCRuns, GCRemoved uint64
	GCLastDuration    time.Duration
	// Reason is a short, bounded label value for the fallback (e.g.
	// "unavailable"); Detail is the full error text for /readyz.
	Reason string
	Detail string
	// Uplinks and Endpoints are the interfaces carrying from-network and
	// from-endpoint programs (tcx ingress).
	Uplinks   []string
	Endpoints []string
}

// DatapathCounter is one cumulative (direction, reason) counter.
type DatapathCounter struct {
	Direction string
	Reason    string
	Packets   uint64
	Bytes     uint64
}

// MapUsage is how full one BPF map is.
type MapUsage struct {
	Map      string // e.g. "ct_tcp"
	Entries  int
	Capacity int
}
