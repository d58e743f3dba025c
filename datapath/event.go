package datapath

import "net/netip"

// Event is one trace/drop record from the ring buffer.
type Event struct {
	Type       string // from-endpoint, to-network, from-network, to-endpoint, drop, to-stack
	CTVerdict  string // "", new, established, reply
	Reason     string
	IfIndex    int
	Target     int
	EndpointID uint32
	Proto      uint8
	Src, Dst   netip.AddrPort
	Len        uint32

	// The packet's headers as it arrived at the hook, nil when the event
	// carries none (not IP, or the header was cut short). At most one of
	// TCP, UDP and ICMP is set, as Proto says.
	IP   *IPHeader
	TCP  *TCPHeader
	UDP  *UDPHeader
	ICMP *ICMPHeader // ICMP or ICMPv6
}

// IPHeader is the IPv4 or IPv6 header of an event's packet.
type IPHeader struct {
	// TTL is the IPv4 TTL or IPv6 hop limit as the packet arrived at the
	// hook, before the fast path decrements it: to-network and
	// to-endpoint events show the same value as their from-* event, and
	// the packet leaves with one less.
	TTL       uint8
	TOS       uint8  // IPv4 TOS / IPv6 traffic class: DSCP << 2 | ECN
	Length    uint32 // IP packet length: IPv4 total length, IPv6 40 + payload length
	ID        uint16 // IPv4 identification
	DF, MF    bool   // IPv4 don't-fragment, more-fragments
	FragOff   uint16 // IPv4 fragment offset in bytes
	FlowLabel uint32 // IPv6 flow label
}

// TCP flag bits (TCPHeader.Flags), as in the header's flags byte.
const (
	TCPFlagFIN = 1 << iota
	TCPFlagSYN
	TCPFlagRST
	TCPFlagPSH
	TCPFlagACK
	TCPFlagURG
	TCPFlagECE
	TCPFlagCWR
)

// TCPHeader is the TCP header of an event's packet.
type TCPHeader struct {
	Flags  uint8 // TCPFlag* bits
	Seq    uint32
	Ack    uint32
	Window uint16 // as sent, before window scaling
}

// UDPHeader is the UDP header of an event's packet.
type UDPHeader struct {
	Length uint16 // UDP length: header + payload
}

// ICMPHeader is the ICMP or ICMPv6 header of an event's packet.
type ICMPHeader struct {
	Type, Code uint8
	ID, Seq    uint16 // echo request/reply identifier and sequence
	MTU        uint32 // next-hop MTU of an IPv4 fragmentation-needed or an ICMPv6 packet-too-big
}
