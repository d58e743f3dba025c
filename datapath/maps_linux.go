package datapath

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

type (
	addrKey   = fromEndpointPrAddrKey
	epValue   = fromEndpointPrEndpoint
	nhValue   = fromEndpointPrNexthop
	lpmKey    = fromEndpointPrLpmKey
	ctKey     = fromEndpointPrCtKey
	ctEntry   = fromEndpointPrCtEntry
	counter   = fromEndpointPrCounter
	traceCfg  = fromEndpointPrTraceCfg
	eventRec  = fromEndpointPrEvent
	reasonNum = fromEndpointPrReason
)

const (
	nhSlots    = 64 // PR_NH_SLOTS
	reasonMax  = int(fromEndpointPrReasonPR_REASON_MAX)
	dirMax     = int(fromEndpointPrDirPR_DIR_MAX)
	ctfOrigIsA = uint8(fromEndpointPrCtFlagsPR_CTF_ORIG_IS_A)
	ctfReply   = uint8(fromEndpointPrCtFlagsPR_CTF_SEEN_REPLY)
	ctfClosing = uint8(fromEndpointPrCtFlagsPR_CTF_CLOSING)
	ctfStack   = uint8(fromEndpointPrCtFlagsPR_CTF_STACK)
)

// One name per enum pr_reason value: a new reason without a name (or the
// reverse) does not compile.
var _ [reasonMax]string = reasonNames

// addrWords stores a in network order: IPv4 in word 0, IPv6 in words 0..3.
func addrWords(a netip.Addr) (w [4]uint32, family uint8) {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		w[0] = binary.NativeEndian.Uint32(b[:])
		return w, 4
	}
	b := a.As16()
	for i := range 4 {
		w[i] = binary.NativeEndian.Uint32(b[4*i:])
	}
	return w, 6
}

func wordsAddr(w [4]uint32, family uint8) netip.Addr {
	var b [16]byte
	for i := range 4 {
		binary.NativeEndian.PutUint32(b[4*i:], w[i])
	}
	if family == 4 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b)
}

func makeAddrKey(a netip.Addr) addrKey {
	w, f := addrWords(a)
	return addrKey{Addr: w, Family: f}
}

func makeLPMKey(p netip.Prefix) lpmKey {
	w, f := addrWords(p.Addr())
	return lpmKey{Prefixlen: uint32(32 + p.Bits()), Family: f, Addr: w}
}

// lpmEntries renders prefix lists into LPM map entries (value 1).
func lpmEntries(lists ...[]netip.Prefix) map[lpmKey]uint32 {
	want := map[lpmKey]uint32{}
	for _, p := range mergePrefixes(lists...) {
		want[makeLPMKey(p)] = 1
	}
	return want
}

// readLPM lists the prefixes of an LPM map, sorted.
func readLPM(m *ebpf.Map) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var k lpmKey
	var v uint32
	it := m.Iterate()
	for it.Next(&k, &v) {
		out = append(out, netip.PrefixFrom(wordsAddr(k.Addr, k.Family), int(k.Prefixlen)-32))
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate %s: %w", m, err)
	}
	return mergePrefixes(out), nil
}

func mac6(m net.HardwareAddr) (out [6]uint8, ok bool) {
	if len(m) != 6 {
		return out, false
	}
	copy(out[:], m)
	return out, true
}

func ntohs(v uint16) uint16 { return v>>8 | v<<8 }

func ntohl(v uint32) uint32 { return bits.ReverseBytes32(v) }

// syncHash makes hash map m hold exactly want (add/update before delete).
func syncHash[K comparable, V comparable](m *ebpf.Map, want map[K]V) error {
	_, err := syncHashN(m, want)
	return err
}

// syncHashN is syncHash that also returns how many entries it wrote or
// deleted.
func syncHashN[K comparable, V comparable](m *ebpf.Map, want map[K]V) (int, error) {
	var errs []error
	n := 0
	for k, v := range want {
		var cur V
		if err := m.Lookup(&k, &cur); err == nil && cur == v {
			continue
		}
		n++
		if err := m.Put(&k, &v); err != nil {
			errs = append(errs, fmt.Errorf("update %s: %w", m, err))
		}
	}
	var stale []K
	var k K
	var v V
	it := m.Iterate()
	for it.Next(&k, &v) {
		if _, ok := want[k]; !ok {
			stale = append(stale, k)
		}
	}
	errs = append(errs, it.Err())
	for _, k := range stale {
		n++
		if err := m.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("delete from %s: %w", m, err))
		}
	}
	return n, errors.Join(errs...)
}

// endpointEntries renders endpoints into endpoint map entries; endpoints
// without both MACs are skipped (their pods stay on the kernel path).
func endpointEntries(eps []Endpoint) map[addrKey]epValue {
	want := map[addrKey]epValue{}
	for _, ep := range eps {
		pod, ok1 := mac6(ep.PodMAC)
		host, ok2 := mac6(ep.HostMAC)
		if !ok1 || !ok2 || ep.IfIndex <= 0 {
			continue
		}
		id := ep.ID
		if id == 0 {
			id = uint32(ep.IfIndex)
		}
		for _, a := range ep.Addrs {
			want[makeAddrKey(a)] = epValue{Ifindex: uint32(ep.IfIndex), Id: id, PodMac: pod, HostMac: host}
		}
	}
	return want
}

// resolvedNextHop is a NextHop with its uplink ifindex and both MACs known.
type resolvedNextHop struct {
	ifindex int
	v6      bool
	src     [6]uint8
	dst     [6]uint8
}

// nextHopSlots spreads each family's ECMP set round robin over its slots.
func nextHopSlots(nhs []resolvedNextHop) [2 * nhSlots]nhValue {
	var slots [2 * nhSlots]nhValue
	var fam [2][]resolvedNextHop
	for _, nh := range nhs {
		i := 0
		if nh.v6 {
			i = 1
		}
		fam[i] = append(fam[i], nh)
	}
	for f, set := range fam {
		for i := 0; i < nhSlots && len(set) > 0; i++ {
			nh := set[i%len(set)]
			slots[f*nhSlots+i] = nhValue{Ifindex: uint32(nh.ifindex), SrcMac: nh.src, DstMac: nh.dst, Valid: 1}
		}
	}
	return slots
}

func syncNextHops(m *ebpf.Map, slots [2 * nhSlots]nhValue) error {
	var errs []error
	for i, v := range slots {
		k := uint32(i)
		var cur nhValue
		if err := m.Lookup(&k, &cur); err == nil && cur == v {
			continue
		}
		if err := m.Put(&k, &v); err != nil {
			errs = append(errs, fmt.Errorf("next-hop slot %d: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

func monotonicNow() time.Duration {
	var ts unix.Timespec
	// CLOCK_MONOTONIC is what bpf_ktime_get_ns reads; it cannot fail on Linux.
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}

func readCounters(m *ebpf.Map) ([]Counter, error) {
	var out []Counter
	for dir := range dirMax {
		for r := range reasonMax {
			k := uint32(dir*reasonMax + r)
			var per []counter
			if err := m.Lookup(&k, &per); err != nil {
				return nil, fmt.Errorf("read counter %d: %w", k, err)
			}
			var c Counter
			for _, p := range per {
				c.Packets += p.Packets
				c.Bytes += p.Bytes
			}
			c.Direction, c.Reason = dirNames[dir], reasonNames[r]
			out = append(out, c)
		}
	}
	return out, nil
}

func ctToEntry(k ctKey, e ctEntry, now time.Duration) CTEntry {
	a := netip.AddrPortFrom(wordsAddr(k.AddrA, k.Family), ntohs(k.PortA))
	b := netip.AddrPortFrom(wordsAddr(k.AddrB, k.Family), ntohs(k.PortB))
	if e.Flags&ctfOrigIsA == 0 {
		a, b = b, a
	}
	return CTEntry{
		Proto: k.Proto, Src: a, Dst: b,
		Packets: e.Packets, Bytes: e.Bytes,
		Expires:      time.Duration(e.ExpiresNs) - now,
		Age:          now - time.Duration(e.CreatedNs),
		SeenReply:    e.Flags&ctfReply != 0,
		Closing:      e.Flags&ctfClosing != 0,
		Stack:        e.Flags&ctfStack != 0,
		IngressIndex: int(e.Ifindex),
	}
}

func readConntrack(maps ...*ebpf.Map) ([]CTEntry, error) {
	now := monotonicNow()
	var out []CTEntry
	for _, m := range maps {
		var k ctKey
		var e ctEntry
		it := m.Iterate()
		for it.Next(&k, &e) {
			out = append(out, ctToEntry(k, e, now))
		}
		if err := it.Err(); err != nil {
			return out, fmt.Errorf("iterate %s: %w", m, err)
		}
	}
	return out, nil
}

// gcConntrack deletes expired entries; it returns how many were deleted
// and how many remain.
func gcConntrack(maps ...*ebpf.Map) (deleted, live int, err error) {
	now := uint64(monotonicNow())
	var errs []error
	for _, m := range maps {
		var expired []ctKey
		var k ctKey
		var e ctEntry
		it := m.Iterate()
		for it.Next(&k, &e) {
			if e.ExpiresNs < now {
				expired = append(expired, k)
			} else {
				live++
			}
		}
		errs = append(errs, it.Err())
		for _, k := range expired {
			switch err := m.Delete(&k); {
			case err == nil:
				deleted++
			case errors.Is(err, ebpf.ErrKeyNotExist):
			default:
				errs = append(errs, err)
			}
		}
	}
	return deleted, live, errors.Join(errs...)
}

var eventTypeNames = [...]string{"", "from-endpoint", "to-network", "from-network", "to-endpoint", "drop", "to-stack"}
var verdictNames = [...]string{"", "new", "established", "reply"}

func decodeEvent(raw []byte) (Event, error) {
	var r eventRec
	if err := binary.Read(bytes.NewReader(raw), binary.NativeEndian, &r); err != nil {
		return Event{}, err
	}
	name := func(names []string, i uint8) string {
		if int(i) < len(names) {
			return names[i]
		}
		return fmt.Sprint(i)
	}
	ev := Event{
		Type: name(eventTypeNames[:], r.Type), CTVerdict: name(verdictNames[:], r.CtVerdict),
		Reason: name(reasonNames[:], r.Reason), IfIndex: int(r.Ifindex), Target: int(r.Target),
		EndpointID: r.EpId, Proto: r.Proto, Len: r.Len,
	}
	if r.Type == uint8(fromEndpointPrEventTypePR_EV_FROM_ENDPOINT) || r.Type == uint8(fromEndpointPrEventTypePR_EV_FROM_NETWORK) {
		ev.Reason = "" // an ingress event precedes the forwarding decision
	}
	if r.Family == 4 || r.Family == 6 {
		ev.Src = netip.AddrPortFrom(wordsAddr(r.Saddr, r.Family), ntohs(r.Sport))
		ev.Dst = netip.AddrPortFrom(wordsAddr(r.Daddr, r.Family), ntohs(r.Dport))
	}
	decodeHeaders(&ev, &r)
	return ev, nil
}

const (
	evhIP = uint8(fromEndpointPrEventHdrsPR_EVH_IP)
	evhL4 = uint8(fromEndpointPrEventHdrsPR_EVH_L4)
)

// decodeHeaders sets ev's header fields from the ones pr_trace_hdrs filled.
func decodeHeaders(ev *Event, r *eventRec) {
	if r.Hdrs&evhIP == 0 {
		return
	}
	ip := &IPHeader{TTL: r.Ttl, TOS: r.Tos, Length: uint32(ntohs(r.IpLen))}
	if r.Family == 6 {
		ip.Length += 40 // the fixed header; payload_len counts the rest
		ip.FlowLabel = r.FlowLbl
	} else {
		frag := ntohs(r.FragOff)
		ip.ID = ntohs(r.IpId)
		ip.DF, ip.MF = frag&0x4000 != 0, frag&0x2000 != 0
		ip.FragOff = (frag & 0x1fff) * 8
	}
	ev.IP = ip
	if r.Hdrs&evhL4 == 0 {
		return
	}
	switch r.Proto {
	case unix.IPPROTO_TCP:
		ev.TCP = &TCPHeader{Flags: r.TcpFlags, Seq: ntohl(r.TcpSeq), Ack: ntohl(r.TcpAck), Window: ntohs(r.TcpWin)}
	case unix.IPPROTO_UDP:
		ev.UDP = &UDPHeader{Length: ntohs(r.UdpLen)}
	case unix.IPPROTO_ICMP, unix.IPPROTO_ICMPV6:
		rest := ntohl(r.IcmpData)
		ic := &ICMPHeader{Type: r.IcmpType, Code: r.IcmpCode}
		switch {
		case r.Proto == unix.IPPROTO_ICMP && (ic.Type == 0 || ic.Type == 8), // echo reply, request
			r.Proto == unix.IPPROTO_ICMPV6 && (ic.Type == 128 || ic.Type == 129):
			ic.ID, ic.Seq = uint16(rest>>16), uint16(rest)
		case r.Proto == unix.IPPROTO_ICMP && ic.Type == 3 && ic.Code == 4: // fragmentation needed
			ic.MTU = rest & 0xffff
		case r.Proto == unix.IPPROTO_ICMPV6 && ic.Type == 2: // packet too big
			ic.MTU = rest
		}
		ev.ICMP = ic
	}
}
