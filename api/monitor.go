package api

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
)

// MonitorEvent is one datapath event on the GET /v1/monitor stream
// (newline-delimited JSON) and in `podrouter monitor -o json`.
type MonitorEvent struct {
	Time       time.Time      `json:"time"`
	Type       string         `json:"type"` // one of MonitorTypes
	CTVerdict  string         `json:"ctVerdict,omitempty"`
	Reason     string         `json:"reason,omitempty"`
	IfIndex    int            `json:"ifindex"`
	IfName     string         `json:"ifname,omitempty"`
	Target     int            `json:"target,omitempty"`
	TargetName string         `json:"targetName,omitempty"`
	EndpointID uint32         `json:"endpoint,omitempty"`
	Proto      uint8          `json:"proto"`
	Src        netip.AddrPort `json:"src"`
	Dst        netip.AddrPort `json:"dst"`
	Len        uint32         `json:"len"`
	// Decoded headers, as the packet arrived at the hook; absent when the
	// event carries none (not IP, or the header was cut short).
	IP   *MonitorIP   `json:"ip,omitempty"`
	TCP  *MonitorTCP  `json:"tcp,omitempty"`
	UDP  *MonitorUDP  `json:"udp,omitempty"`
	ICMP *MonitorICMP `json:"icmp,omitempty"` // ICMP or ICMPv6, as proto says
	// Error ends a stream that failed (the only field set then).
	Error string `json:"error,omitempty"`
}

// MonitorIP is the IPv4 or IPv6 header of a MonitorEvent's packet.
type MonitorIP struct {
	TTL       uint8  `json:"ttl"` // TTL / hop limit before the fast path decrements it, also in to-* events
	TOS       uint8  `json:"tos"` // IPv4 TOS / IPv6 traffic class
	Length    uint32 `json:"length"`
	ID        uint16 `json:"id,omitempty"`
	DF        bool   `json:"df,omitempty"`
	MF        bool   `json:"mf,omitempty"`
	FragOff   uint16 `json:"fragOffset,omitempty"`
	FlowLabel uint32 `json:"flowLabel,omitempty"`
}

// MonitorTCP is the TCP header of a MonitorEvent's packet.
type MonitorTCP struct {
	Flags  []string `json:"flags"` // names from TCPFlags, in bit order
	Seq    uint32   `json:"seq"`
	Ack    uint32   `json:"ack"`
	Window uint16   `json:"window"` // as sent, unscaled
}

// MonitorUDP is the UDP header of a MonitorEvent's packet.
type MonitorUDP struct {
	Length uint16 `json:"length"`
}

// MonitorICMP is the ICMP or ICMPv6 header of a MonitorEvent's packet.
type MonitorICMP struct {
	Type uint8  `json:"type"`
	Code uint8  `json:"code"`
	ID   uint16 `json:"id,omitempty"`  // echo
	Seq  uint16 `json:"seq,omitempty"` // echo
	MTU  uint32 `json:"mtu,omitempty"` // fragmentation needed, packet too big
}

// TCPFlags are the TCP flags in bit order (FIN is bit 0) with tcpdump's
// letters.
var TCPFlags = [8]struct{ Name, Letter string }{
	{"FIN", "F"}, {"SYN", "S"}, {"RST", "R"}, {"PSH", "P"}, {"ACK", "."}, {"URG", "U"}, {"ECE", "E"}, {"CWR", "W"},
}

// MonitorTypes are the event types a filter may name.
var MonitorTypes = []string{"from-endpoint", "to-network", "from-network", "to-endpoint", "drop", "to-stack"}

// MonitorFilter is what a client asks the monitor stream for; zero fields
// match anything.
type MonitorFilter struct {
	Types    []string
	From, To netip.Addr
}

// Match reports whether ev passes the address filters (the types are
// selected in the datapath).
func (f MonitorFilter) Match(ev MonitorEvent) bool {
	if f.From.IsValid() && ev.Src.Addr() != f.From {
		return false
	}
	return !f.To.IsValid() || ev.Dst.Addr() == f.To
}

// Query encodes the filter as GET /v1/monitor's query.
func (f MonitorFilter) Query() string {
	v := url.Values{}
	for _, t := range f.Types {
		v.Add("type", t)
	}
	if f.From.IsValid() {
		v.Set("from", f.From.String())
	}
	if f.To.IsValid() {
		v.Set("to", f.To.String())
	}
	return v.Encode()
}

// ParseMonitorFilter reads a filter from a query (or from the CLI's flags
// put in one).
func ParseMonitorFilter(v url.Values) (MonitorFilter, error) {
	var f MonitorFilter
	for _, t := range v["type"] {
		if !slices.Contains(MonitorTypes, t) {
			return f, fmt.Errorf("type %q: want one of %s", t, strings.Join(MonitorTypes, ", "))
		}
		f.Types = append(f.Types, t)
	}
	for key, dst := range map[string]*netip.Addr{"from": &f.From, "to": &f.To} {
		if s := v.Get(key); s != "" {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return f, fmt.Errorf("%s: %q is not an IP address", key, s)
			}
			*dst = a
		}
	}
	return f, nil
}
