package datapath

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// Hand-built frames for BPF_PROG_RUN tests.

var (
	macPodA  = net.HardwareAddr{0x02, 0, 0, 0, 0xa, 0x01}
	macHostA = net.HardwareAddr{0x02, 0, 0, 0, 0xa, 0x02}
	macPodB  = net.HardwareAddr{0x02, 0, 0, 0, 0xb, 0x01}
	macHostB = net.HardwareAddr{0x02, 0, 0, 0, 0xb, 0x02}
	macUp    = net.HardwareAddr{0x02, 0, 0, 0, 0xc, 0x01}
	macToR   = net.HardwareAddr{0x02, 0, 0, 0, 0xc, 0x02}
)

const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoGRE    = 47
	protoICMPv6 = 58
	tcpSYN      = 0x02
	tcpACK      = 0x10
)

func csumFold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func csumAdd(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

func pseudoSum(src, dst netip.Addr, proto uint8, l4len int) uint32 {
	s := csumAdd(0, src.AsSlice())
	s = csumAdd(s, dst.AsSlice())
	return s + uint32(proto) + uint32(l4len)
}

// l4 builds a TCP/UDP/ICMP(v6) header (+ payload) with a valid checksum.
func l4(src, dst netip.Addr, proto uint8, sport, dport uint16, flags uint8, payload []byte) []byte {
	var h []byte
	switch proto {
	case protoTCP:
		h = make([]byte, 20)
		binary.BigEndian.PutUint16(h[0:], sport)
		binary.BigEndian.PutUint16(h[2:], dport)
		binary.BigEndian.PutUint32(h[4:], 1000)
		h[12] = 5 << 4
		h[13] = flags
		binary.BigEndian.PutUint16(h[14:], 65535)
	case protoUDP:
		h = make([]byte, 8)
		binary.BigEndian.PutUint16(h[0:], sport)
		binary.BigEndian.PutUint16(h[2:], dport)
		binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	case protoICMP, protoICMPv6: // sport = type, dport = echo id
		h = make([]byte, 8)
		h[0] = uint8(sport)
		binary.BigEndian.PutUint16(h[4:], dport)
		binary.BigEndian.PutUint16(h[6:], 1)
	default:
		h = make([]byte, 8)
	}
	h = append(h, payload...)
	var sum uint32
	if proto != protoICMP {
		sum = pseudoSum(src, dst, proto, len(h))
	}
	c := csumFold(csumAdd(sum, h))
	switch proto {
	case protoTCP:
		binary.BigEndian.PutUint16(h[16:], c)
	case protoUDP:
		binary.BigEndian.PutUint16(h[6:], c)
	case protoICMP, protoICMPv6:
		binary.BigEndian.PutUint16(h[2:], c)
	}
	return h
}

// tcpSeg builds a TCP header with the given flags, sequence and
// acknowledgment numbers and window, with a valid checksum.
func tcpSeg(src, dst netip.Addr, sport, dport uint16, flags uint8, seq, ack uint32, win uint16) []byte {
	h := l4(src, dst, protoTCP, sport, dport, flags, nil)
	binary.BigEndian.PutUint32(h[4:], seq)
	binary.BigEndian.PutUint32(h[8:], ack)
	binary.BigEndian.PutUint16(h[14:], win)
	binary.BigEndian.PutUint16(h[16:], 0)
	binary.BigEndian.PutUint16(h[16:], csumFold(csumAdd(pseudoSum(src, dst, protoTCP, len(h)), h)))
	return h
}

// icmpMsg builds an ICMP (IPv4 src) or ICMPv6 message: type, code, header
// bytes 4..7 (echo id << 16 | seq, or an MTU) and payload, valid checksum.
func icmpMsg(src, dst netip.Addr, typ, code uint8, rest uint32, payload []byte) []byte {
	h := make([]byte, 8, 8+len(payload))
	h[0], h[1] = typ, code
	binary.BigEndian.PutUint32(h[4:], rest)
	h = append(h, payload...)
	var sum uint32
	if !src.Is4() {
		sum = pseudoSum(src, dst, protoICMPv6, len(h))
	}
	binary.BigEndian.PutUint16(h[2:], csumFold(csumAdd(sum, h)))
	return h
}

type frameOpts struct {
	ttl     uint8
	tos     uint8  // IPv4 TOS / IPv6 traffic class
	id      uint16 // IPv4 identification
	flow    uint32 // IPv6 flow label
	fragOff uint16 // IPv4 flags+offset field
	options []byte // IPv4 options (multiple of 4)
	nextHdr uint8  // IPv6 next header override
}

// frame builds Ethernet + IPv4/IPv6 + l4.
func frame(dmac, smac net.HardwareAddr, src, dst netip.Addr, proto uint8, l4b []byte, o frameOpts) []byte {
	if o.ttl == 0 {
		o.ttl = 64
	}
	b := append(append([]byte{}, dmac...), smac...)
	if src.Is4() {
		b = append(b, 0x08, 0x00)
		ip := make([]byte, 20+len(o.options))
		ip[0] = 0x40 | uint8(len(ip)/4)
		ip[1] = o.tos
		binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)+len(l4b)))
		binary.BigEndian.PutUint16(ip[4:], o.id)
		binary.BigEndian.PutUint16(ip[6:], o.fragOff)
		ip[8] = o.ttl
		ip[9] = proto
		copy(ip[12:], src.AsSlice())
		copy(ip[16:], dst.AsSlice())
		copy(ip[20:], o.options)
		binary.BigEndian.PutUint16(ip[10:], csumFold(csumAdd(0, ip)))
		return append(append(b, ip...), l4b...)
	}
	b = append(b, 0x86, 0xdd)
	ip := make([]byte, 40)
	binary.BigEndian.PutUint32(ip[0:], 6<<28|uint32(o.tos)<<20|o.flow&0xfffff)
	binary.BigEndian.PutUint16(ip[4:], uint16(len(l4b)))
	ip[6] = proto
	if o.nextHdr != 0 {
		ip[6] = o.nextHdr
	}
	ip[7] = o.ttl
	copy(ip[8:], src.AsSlice())
	copy(ip[24:], dst.AsSlice())
	return append(append(b, ip...), l4b...)
}

func arpFrame() []byte {
	b := append(append([]byte{}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), macPodA...)
	b = append(b, 0x08, 0x06)
	return append(b, make([]byte, 28)...)
}
