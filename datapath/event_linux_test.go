package datapath

import (
	"context"
	"encoding/json"
	"net/netip"
	"os/exec"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// TestTraceEventHeaders runs crafted frames through both programs and
// checks that the header fields of their events decode to the values in the
// frames: TTL as received (to-* events too, though the frame leaves with one
// less), TOS / traffic class, IPv4 id and DF, IPv6 flow label, TCP flags,
// sequence, acknowledgment and window, UDP length, ICMP/ICMPv6 type, code,
// echo id and sequence, MTU. A truncated L4 header leaves only the IP header.
func TestTraceEventHeaders(t *testing.T) {
	f := newFixture(t, Config{}, loadOpts{ttlDec: 1})
	f.setNextHops(true)
	rd, err := ringbuf.NewReader(f.objs.ep.PrEvents)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	f.traceOn(0, fromEndpointPrEventTypePR_EV_FROM_ENDPOINT, fromEndpointPrEventTypePR_EV_TO_NETWORK,
		fromEndpointPrEventTypePR_EV_FROM_NETWORK, fromEndpointPrEventTypePR_EV_TO_ENDPOINT,
		fromEndpointPrEventTypePR_EV_DROP, fromEndpointPrEventTypePR_EV_TO_STACK)

	const df = 0x4000
	ep, net := f.objs.ep.FromEndpoint, f.objs.net.FromNetwork
	syn := tcpSeg(podA4, remote4, 40000, 80, tcpSYN|TCPFlagECE|TCPFlagCWR, 0x01020304, 0, 64240)
	cases := []struct {
		name  string
		prog  *ebpf.Program
		in    []byte
		ret   uint32
		types []string // the packet's events, in order
		ip    *IPHeader
		tcp   *TCPHeader
		udp   *UDPHeader
		icmp  *ICMPHeader
	}{
		{name: "tcp syn, pod to network", prog: ep,
			in:  frame(macHostA, macPodA, podA4, remote4, protoTCP, syn, frameOpts{ttl: 64, tos: 0xb8, id: 4711, fragOff: df}),
			ret: actRedirect, types: []string{"from-endpoint", "to-network"},
			ip:  &IPHeader{TTL: 64, TOS: 0xb8, Length: 40, ID: 4711, DF: true},
			tcp: &TCPHeader{Flags: TCPFlagSYN | TCPFlagECE | TCPFlagCWR, Seq: 0x01020304, Window: 64240}},
		{name: "tcp fin-ack, network to pod", prog: net,
			in: frame(macUp, macToR, remote4, podA4, protoTCP,
				tcpSeg(remote4, podA4, 80, 40000, TCPFlagFIN|tcpACK, 0xfffffff0, 0x01020305, 512), frameOpts{ttl: 62, id: 0xbeef}),
			ret: actRedirect, types: []string{"from-network", "to-endpoint"},
			ip:  &IPHeader{TTL: 62, Length: 40, ID: 0xbeef},
			tcp: &TCPHeader{Flags: TCPFlagFIN | TCPFlagACK, Seq: 0xfffffff0, Ack: 0x01020305, Window: 512}},
		{name: "udp ipv6, pod to pod", prog: ep,
			in: frame(macHostA, macPodA, podA6, podB6, protoUDP,
				l4(podA6, podB6, protoUDP, 5353, 53, 0, make([]byte, 12)), frameOpts{ttl: 33, tos: 0xb9, flow: 0xabcde}),
			ret: actRedirect, types: []string{"from-endpoint", "to-endpoint"},
			ip:  &IPHeader{TTL: 33, TOS: 0xb9, Length: 60, FlowLabel: 0xabcde},
			udp: &UDPHeader{Length: 20}},
		{name: "icmp echo request, pod to pod", prog: ep,
			in: frame(macHostA, macPodA, podA4, podB4, protoICMP,
				icmpMsg(podA4, podB4, 8, 0, 7<<16|3, make([]byte, 56)), frameOpts{ttl: 64, id: 1, fragOff: df}),
			ret: actRedirect, types: []string{"from-endpoint", "to-endpoint"},
			ip:   &IPHeader{TTL: 64, Length: 84, ID: 1, DF: true},
			icmp: &ICMPHeader{Type: 8, ID: 7, Seq: 3}},
		{name: "icmp fragmentation needed, network to pod", prog: net,
			in: frame(macUp, macToR, remote4, podA4, protoICMP,
				icmpMsg(remote4, podA4, 3, 4, 1400, make([]byte, 28)), frameOpts{ttl: 250, tos: 0xc0}),
			ret: actRedirect, types: []string{"from-network", "to-endpoint"},
			ip:   &IPHeader{TTL: 250, TOS: 0xc0, Length: 56},
			icmp: &ICMPHeader{Type: 3, Code: 4, MTU: 1400}},
		{name: "icmpv6 echo reply, network to pod", prog: net,
			in: frame(macUp, macToR, remote6, podA6, protoICMPv6,
				icmpMsg(remote6, podA6, 129, 0, 9<<16|4, nil), frameOpts{ttl: 60, flow: 1}),
			ret: actRedirect, types: []string{"from-network", "to-endpoint"},
			ip:   &IPHeader{TTL: 60, Length: 48, FlowLabel: 1},
			icmp: &ICMPHeader{Type: 129, ID: 9, Seq: 4}},
		{name: "icmpv6 packet too big, network to pod", prog: net,
			in: frame(macUp, macToR, remote6, podA6, protoICMPv6,
				icmpMsg(remote6, podA6, 2, 0, 1280, make([]byte, 48)), frameOpts{ttl: 255}),
			ret: actRedirect, types: []string{"from-network", "to-endpoint"},
			ip:   &IPHeader{TTL: 255, Length: 96},
			icmp: &ICMPHeader{Type: 2, MTU: 1280}},
		{name: "udp ttl 1, to the stack", prog: ep,
			in: frame(macHostA, macPodA, podA4, remote4, protoUDP,
				l4(podA4, remote4, protoUDP, 33434, 33435, 0, make([]byte, 4)), frameOpts{ttl: 1, id: 9}),
			ret: actOK, types: []string{"to-stack"},
			ip:  &IPHeader{TTL: 1, Length: 32, ID: 9},
			udp: &UDPHeader{Length: 12}},
		{name: "tcp header cut short, dropped", prog: ep,
			in:  frame(macHostA, macPodA, podA4, remote4, protoTCP, syn[:4], frameOpts{ttl: 64, id: 5}),
			ret: actShot, types: []string{"drop"},
			ip: &IPHeader{TTL: 64, Length: 24, ID: 5}},
	}
	for _, c := range cases {
		ret, out := f.run(c.prog, c.in)
		if ret != c.ret {
			t.Errorf("%s: verdict %d, want %d", c.name, ret, c.ret)
		}
		if ret == actRedirect {
			ttlAt := 14 + 8 // IPv4 TTL
			if c.in[12] == 0x86 {
				ttlAt = 14 + 7 // IPv6 hop limit
			}
			if out[ttlAt] != c.ip.TTL-1 {
				t.Errorf("%s: forwarded with ttl %d, want %d", c.name, out[ttlAt], c.ip.TTL-1)
			}
		}
		for i, e := range readEvents(t, rd, len(c.types)) {
			if e.Type != c.types[i] {
				t.Errorf("%s: event %d is %s, want %s", c.name, i, e.Type, c.types[i])
			}
			for _, h := range []struct {
				what      string
				got, want any
			}{{"ip", e.IP, c.ip}, {"tcp", e.TCP, c.tcp}, {"udp", e.UDP, c.udp}, {"icmp", e.ICMP, c.icmp}} {
				if !reflect.DeepEqual(h.got, h.want) {
					t.Errorf("%s: %s event %s header %+v, want %+v", c.name, e.Type, h.what, deref(h.got), deref(h.want))
				}
			}
		}
	}
}

// deref shows what a header pointer points to (or nil) in a failure message.
func deref(p any) any {
	if v := reflect.ValueOf(p); v.Kind() == reflect.Pointer && !v.IsNil() {
		return v.Elem().Interface()
	}
	return p
}

// netnsMonitor is part of TestNetnsDatapath: it traces a ping and a refused
// TCP connect from pod A (10.244.0.10) to pod B (10.244.0.20), and a ping
// to the "ToR" (198.51.100.1, through the uplink), with Datapath.Monitor:
// real packets from real sockets go through the programs, the ring buffer
// and decodeEvent. The RST's ack number is the SYN's sequence number + 1:
// seq and ack decode from the right bytes.
func netnsMonitor(t *testing.T, d *Datapath, podA string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type seen struct {
		At time.Time
		Event
	}
	var mu sync.Mutex
	var got []seen
	snapshot := func() []Event {
		mu.Lock()
		defer mu.Unlock()
		evs := make([]Event, len(got))
		for i, s := range got {
			evs[i] = s.Event
		}
		return evs
	}
	done := make(chan error, 1)
	go func() {
		done <- d.Monitor(ctx, nil, 1, func(ev Event) {
			mu.Lock()
			got = append(got, seen{time.Now(), ev})
			mu.Unlock()
		})
	}()
	waitFor(t, "tracing on", func() bool {
		var tc traceCfg
		zero := uint32(0)
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.impl.objs.ep.PrTraceSettings.Lookup(&zero, &tc) == nil && tc.Enabled != 0
	})
	run(t, "ip", "netns", "exec", podA, "ping", "-c", "1", "-W", "1", "10.244.0.20")
	// Nothing listens on the port: SYN, then RST-ACK back; bash fails.
	exec.Command("ip", "netns", "exec", podA, "bash", "-c", "exec 3<>/dev/tcp/10.244.0.20/5298").Run() //nolint:errcheck // refused on purpose
	run(t, "ip", "netns", "exec", podA, "ping", "-c", "1", "-W", "1", "198.51.100.1")
	find := func(evs []Event, typ string, match func(Event) bool) (Event, bool) {
		for _, e := range evs {
			if e.Type == typ && match(e) {
				return e, true
			}
		}
		return Event{}, false
	}
	a, b, tor := netip.MustParseAddr("10.244.0.10"), netip.MustParseAddr("10.244.0.20"), netip.MustParseAddr("198.51.100.1")
	echo := func(typ uint8, src netip.Addr) func(Event) bool {
		return func(e Event) bool { return e.ICMP != nil && e.ICMP.Type == typ && e.Src.Addr() == src }
	}
	isRST := func(e Event) bool { return e.TCP != nil && e.TCP.Flags&TCPFlagRST != 0 }
	waitFor(t, "the ToR's echo reply in a to-endpoint event", func() bool {
		_, ok := find(snapshot(), "to-endpoint", echo(0, tor))
		return ok
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("ifindex: vpa %d, vpb %d, up0 %d", ifindexOf(t, "vpa"), ifindexOf(t, "vpb"), ifindexOf(t, "up0"))
	mu.Lock()
	for _, s := range got {
		j, _ := json.Marshal(s) // plain data: cannot fail
		t.Logf("event %s", j)
	}
	mu.Unlock()

	all := snapshot()
	// TTL 64 in every event, the to-* ones too: the TTL as received.
	for _, c := range []struct {
		types    []string
		req, rep netip.Addr
	}{
		{[]string{"from-endpoint", "to-endpoint"}, a, b},
		{[]string{"from-endpoint", "to-network"}, a, tor},
		{[]string{"from-network", "to-endpoint"}, tor, a},
	} {
		for _, typ := range c.types {
			req, ok := find(all, typ, echo(8, c.req))
			if c.req == tor { // the ToR's reply
				req, ok = find(all, typ, echo(0, c.req))
			}
			if !ok {
				t.Errorf("no %s event with an ICMP echo from %s", typ, c.req)
				continue
			}
			if req.IP == nil || req.IP.TTL != 64 || req.IP.Length != 84 || req.ICMP.Seq != 1 || req.ICMP.ID != req.Src.Port() {
				t.Errorf("%s echo from %s: ip %+v icmp %+v, want ttl 64, length 84, seq 1, id %d", typ, c.req, req.IP, req.ICMP, req.Src.Port())
			}
		}
	}
	syn, ok := find(all, "from-endpoint", func(e Event) bool { return e.TCP != nil && e.TCP.Flags == TCPFlagSYN })
	if !ok {
		t.Fatal("no from-endpoint event with the SYN")
	}
	if !syn.IP.DF || syn.IP.TTL != 64 || syn.TCP.Window == 0 || syn.Dst.Port() != 5298 {
		t.Errorf("SYN: ip %+v tcp %+v, want DF, ttl 64, a window, port 5298", syn.IP, syn.TCP)
	}
	rst, ok := find(all, "to-endpoint", isRST)
	if !ok || rst.TCP.Flags != TCPFlagRST|TCPFlagACK || rst.TCP.Ack != syn.TCP.Seq+1 || rst.Src.Port() != 5298 {
		t.Errorf("RST: %+v, want flags RST|ACK and ack %d (the SYN's seq + 1)", rst.TCP, syn.TCP.Seq+1)
	}
}
