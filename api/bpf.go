package api

import (
	"net/netip"
	"time"
)

// The wire types of `podrouter bpf … -o json`: what the pinned maps and
// links hold, read directly (not through the daemon).

// Counter is one (direction, reason) counter summed over CPUs.
type Counter struct {
	Direction string `json:"direction"` // from-endpoint, from-network
	Reason    string `json:"reason"`    // fwd-redirect-peer, pass-ttl, drop-malformed, …
	Packets   uint64 `json:"packets"`
	Bytes     uint64 `json:"bytes"`
}

// Endpoint is one address of the endpoint map.
type Endpoint struct {
	Address netip.Addr `json:"address"`
	IfIndex int        `json:"ifindex"`
	IfName  string     `json:"ifname,omitempty"`
	ID      uint32     `json:"id"`
	PodMAC  string     `json:"podMAC"`
	HostMAC string     `json:"hostMAC"`
}

// CTEntry is one conntrack entry, oriented as the flow's originator sent it.
type CTEntry struct {
	Proto     uint8          `json:"proto"` // IP protocol number
	Src       netip.AddrPort `json:"src"`
	Dst       netip.AddrPort `json:"dst"`
	Packets   [2]uint64      `json:"packets"` // [original, reply]
	Bytes     [2]uint64      `json:"bytes"`
	Expires   time.Duration  `json:"expiresNs"` // remaining lifetime; negative: expired, GC pending
	Age       time.Duration  `json:"ageNs"`
	SeenReply bool           `json:"seenReply"`
	Closing   bool           `json:"closing"`
	// Stack: every packet of the flow goes to the kernel stack, because
	// nf_conntrack translates it (a Service) or knows it.
	Stack        bool `json:"stack"`
	IngressIndex int  `json:"ingressIfindex"`
}

// NextHop is one valid slot of the next-hop map.
type NextHop struct {
	Family  string `json:"family"` // ipv4, ipv6
	Slot    int    `json:"slot"`
	IfIndex int    `json:"ifindex"`
	IfName  string `json:"ifname,omitempty"`
	SrcMAC  string `json:"srcMAC"`
	DstMAC  string `json:"dstMAC"`
}

// Hook is one interface with a podrouter pin or a tcx ingress program.
type Hook struct {
	IfName   string   `json:"ifName"`
	IfIndex  int      `json:"ifIndex"`
	Uplink   bool     `json:"uplink"`
	Pinned   bool     `json:"pinned"`             // podrouter holds a link pin for it
	PinnedID uint32   `json:"pinnedProgramID"`    // program of the pinned link
	Programs []uint32 `json:"programs,omitempty"` // every program on tcx ingress, in order
}

// CTFlush is the result of `bpf ct flush -o json`.
type CTFlush struct {
	Deleted int `json:"deleted"`
}
