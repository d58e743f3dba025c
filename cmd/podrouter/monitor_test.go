package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/podrouter/podrouter/datapath"
)

// TestFormatEventGolden pins the `podrouter monitor` line format.
func TestFormatEventGolden(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 1000, time.UTC)
	pod1, pod2 := netip.MustParseAddrPort("10.0.1.2:0"), netip.MustParseAddrPort("10.0.3.3:0")
	tcpA, tcpB := netip.MustParseAddrPort("10.0.1.2:40000"), netip.MustParseAddrPort("10.0.3.3:80")
	cases := []struct {
		ev   MonitorEvent
		v    bool
		want string
	}{
		{MonitorEvent{Type: "from-endpoint", EndpointID: 7, IfIndex: 12, IfName: "veth1a2b", CTVerdict: "new", Proto: 1, Src: pod1, Dst: pod2, Len: 98, Time: at}, false,
			"<- from-endpoint endpoint 7 on veth1a2b(12) ct new: 10.0.1.2 -> 10.0.3.3 icmp"},
		{MonitorEvent{Type: "to-network", Target: 3, TargetName: "up1", Reason: "fwd-nexthop-cache", Proto: 1, Src: pod1, Dst: pod2, Len: 98, Time: at}, true,
			"-> to-network via up1(3) (fwd-nexthop-cache): 10.0.1.2 -> 10.0.3.3 icmp len 98 at 12:00:00.000001"},
		{MonitorEvent{Type: "from-network", IfIndex: 3, IfName: "up1", CTVerdict: "reply", Proto: 6, Src: tcpB, Dst: tcpA, Len: 60, Time: at}, false,
			"<- from-network on up1(3) ct reply: 10.0.3.3:80 -> 10.0.1.2:40000 tcp"},
		{MonitorEvent{Type: "to-endpoint", EndpointID: 7, Target: 12, Proto: 6, Src: tcpB, Dst: tcpA, Time: at}, false,
			"-> to-endpoint endpoint 7 via ifindex 12: 10.0.3.3:80 -> 10.0.1.2:40000 tcp"},
		{MonitorEvent{Type: "drop", Reason: "drop-malformed", IfIndex: 12, IfName: "veth1a2b", Proto: 17, Src: tcpA, Dst: tcpB, Time: at}, false,
			"xx drop (drop-malformed) on veth1a2b(12): 10.0.1.2:40000 -> 10.0.3.3:80 udp"},
		{MonitorEvent{Type: "to-stack", Reason: "pass-ttl", IfIndex: 12, Proto: 58, Src: netip.MustParseAddrPort("[fd00:10:0:1::2]:0"), Dst: netip.MustParseAddrPort("[fd00:10:0:3::3]:0"), Time: at}, false,
			"-> stack (pass-ttl) from ifindex 12: fd00:10:0:1::2 -> fd00:10:0:3::3 icmpv6"},
		{MonitorEvent{Type: "to-stack", Reason: "pass-not-ip", IfIndex: 3, IfName: "up1", Time: at}, false,
			"-> stack (pass-not-ip) from up1(3): non-IP frame"},
	}
	for _, c := range cases {
		if got := formatEvent(c.ev, c.v); got != c.want {
			t.Errorf("got  %q\nwant %q", got, c.want)
		}
	}
}

func TestMonitorFilter(t *testing.T) {
	f, err := parseMonitorFilter(url.Values{"type": {"drop"}, "from": {"10.0.1.2"}})
	if err != nil {
		t.Fatal(err)
	}
	if !f.match(MonitorEvent{Src: netip.MustParseAddrPort("10.0.1.2:1")}) || f.match(MonitorEvent{Src: netip.MustParseAddrPort("10.0.1.3:1")}) {
		t.Error("from filter")
	}
	if _, err := parseMonitorFilter(url.Values{"type": {"bogus"}}); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("bad type accepted: %v", err)
	}
	if _, err := parseMonitorFilter(url.Values{"to": {"nope"}}); err == nil {
		t.Error("bad address accepted")
	}
}

// monitorFixture is a day of operator debugging in datapath events: a TCP
// handshake and teardown, UDP over both families, ICMP echo and errors, a
// neighbor solicitation, a TTL expiry and a malformed drop.
func monitorFixture() []datapath.Event {
	ap := netip.MustParseAddrPort
	pod, pod6 := ap("10.0.1.2:40000"), ap("[fd00:10:0:1::2]:5353")
	web, dns6 := ap("10.0.3.3:80"), ap("[fd00:10:0:3::3]:53")
	ping, pong := ap("10.0.1.2:7"), ap("10.0.3.3:7")
	ping6, pong6 := ap("[fd00:10:0:1::2]:9"), ap("[fd00:10:0:3::3]:9")
	noPort := func(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr(), 0) }
	const syn, ack, fin, rst, psh, ece, cwr = datapath.TCPFlagSYN, datapath.TCPFlagACK, datapath.TCPFlagFIN,
		datapath.TCPFlagRST, datapath.TCPFlagPSH, datapath.TCPFlagECE, datapath.TCPFlagCWR
	fromEP := func(ct string, src, dst netip.AddrPort, proto uint8) datapath.Event {
		return datapath.Event{Type: "from-endpoint", CTVerdict: ct, IfIndex: 12, EndpointID: 7, Proto: proto, Src: src, Dst: dst}
	}
	toNet := func(ct string, src, dst netip.AddrPort, proto uint8) datapath.Event {
		return datapath.Event{Type: "to-network", CTVerdict: ct, Reason: "fwd-nexthop", IfIndex: 12, Target: 3, Proto: proto, Src: src, Dst: dst}
	}
	fromNet := func(ct string, src, dst netip.AddrPort, proto uint8) datapath.Event {
		return datapath.Event{Type: "from-network", CTVerdict: ct, IfIndex: 3, Proto: proto, Src: src, Dst: dst}
	}
	toEP := func(ct string, src, dst netip.AddrPort, proto uint8) datapath.Event {
		return datapath.Event{Type: "to-endpoint", CTVerdict: ct, Reason: "fwd-redirect-peer", IfIndex: 3, Target: 12, EndpointID: 7, Proto: proto, Src: src, Dst: dst}
	}
	with := func(ev datapath.Event, ip datapath.IPHeader, l4 any) datapath.Event {
		ev.IP = &ip
		ev.Len = 14 + ip.Length
		switch h := l4.(type) {
		case datapath.TCPHeader:
			ev.TCP = &h
		case datapath.UDPHeader:
			ev.UDP = &h
		case datapath.ICMPHeader:
			ev.ICMP = &h
		}
		return ev
	}
	return []datapath.Event{
		with(fromEP("new", pod, web, 6), datapath.IPHeader{TTL: 64, ID: 4711, DF: true, Length: 60},
			datapath.TCPHeader{Flags: syn | ece | cwr, Seq: 1, Window: 64240}),
		with(toNet("new", pod, web, 6), datapath.IPHeader{TTL: 64, ID: 4711, DF: true, Length: 60},
			datapath.TCPHeader{Flags: syn | ece | cwr, Seq: 1, Window: 64240}),
		with(fromNet("reply", web, pod, 6), datapath.IPHeader{TTL: 62, DF: true, Length: 60},
			datapath.TCPHeader{Flags: syn | ack | ece, Seq: 3000, Ack: 2, Window: 65160}),
		with(fromEP("established", pod, web, 6), datapath.IPHeader{TTL: 64, TOS: 0xb8, ID: 4713, DF: true, Length: 52},
			datapath.TCPHeader{Flags: psh | ack, Seq: 2, Ack: 3001, Window: 502}),
		with(fromEP("established", pod, web, 6), datapath.IPHeader{TTL: 64, ID: 4714, DF: true, Length: 52},
			datapath.TCPHeader{Flags: fin | ack, Seq: 80, Ack: 3001, Window: 502}),
		with(toEP("reply", web, pod, 6), datapath.IPHeader{TTL: 62, DF: true, Length: 40},
			datapath.TCPHeader{Flags: rst, Seq: 3001}),
		with(toNet("new", pod, ap("10.96.0.10:53"), 17), datapath.IPHeader{TTL: 64, ID: 812, Length: 68},
			datapath.UDPHeader{Length: 48}),
		with(fromEP("new", pod6, dns6, 17), datapath.IPHeader{TTL: 64, TOS: 0x2e << 2, FlowLabel: 0xabcde, Length: 88},
			datapath.UDPHeader{Length: 48}),
		with(fromEP("new", ping, pong, 1), datapath.IPHeader{TTL: 64, ID: 1, DF: true, Length: 84},
			datapath.ICMPHeader{Type: 8, ID: 7, Seq: 3}),
		with(toEP("reply", pong, ping, 1), datapath.IPHeader{TTL: 62, ID: 6602, Length: 84},
			datapath.ICMPHeader{Type: 0, ID: 7, Seq: 3}),
		with(fromNet("", noPort(web), noPort(pod), 1), datapath.IPHeader{TTL: 254, TOS: 0xc0, ID: 0, Length: 576},
			datapath.ICMPHeader{Type: 3, Code: 4, MTU: 1400}),
		with(fromEP("new", ping6, pong6, 58), datapath.IPHeader{TTL: 64, FlowLabel: 0x1f00d, Length: 104},
			datapath.ICMPHeader{Type: 128, ID: 9, Seq: 1}),
		with(toEP("", noPort(pong6), noPort(ping6), 58), datapath.IPHeader{TTL: 63, Length: 1280},
			datapath.ICMPHeader{Type: 2, MTU: 1280}),
		with(datapath.Event{Type: "to-stack", Reason: "pass-non-unicast", IfIndex: 12, Proto: 58,
			Src: noPort(pod6), Dst: ap("[ff02::1:ff00:3]:0")}, datapath.IPHeader{TTL: 255, Length: 72},
			datapath.ICMPHeader{Type: 135}),
		with(datapath.Event{Type: "to-stack", Reason: "pass-ttl", IfIndex: 12, Proto: 17,
			Src: pod, Dst: ap("10.0.3.3:33434")}, datapath.IPHeader{TTL: 1, ID: 9, Length: 60},
			datapath.UDPHeader{Length: 40}),
		with(datapath.Event{Type: "drop", Reason: "drop-malformed", IfIndex: 12, Proto: 6, Src: pod, Dst: web},
			datapath.IPHeader{TTL: 64, ID: 5, Length: 24}, nil),
	}
}

// TestMonitorVerboseGolden pins `podrouter monitor -v` and `-o json`: each
// event goes the way it goes in production, datapath.Event -> MonitorEvent
// -> NDJSON on the local API -> decoded by the CLI -> formatted.
func TestMonitorVerboseGolden(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 1000, time.UTC)
	names := map[int]string{3: "up1", 12: "veth1a2b"}
	var text, ndjson bytes.Buffer
	for i, ev := range monitorFixture() {
		me := toMonitorEvent(ev, at.Add(time.Duration(i)*time.Millisecond), func(i int) string { return names[i] })
		line, err := json.Marshal(me)
		if err != nil {
			t.Fatal(err)
		}
		ndjson.Write(append(line, '\n'))
		var got MonitorEvent
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatal(err)
		}
		text.WriteString(formatEvent(got, true) + "\n")
		// Verbose only adds lines: the first is the terse line plus length
		// and time, which scripts reading the text output rely on.
		first, _, _ := strings.Cut(formatEvent(got, true), "\n")
		if terse := formatEvent(got, false); !strings.HasPrefix(first, terse+" len ") {
			t.Errorf("verbose first line %q does not extend the terse %q", first, terse)
		}
	}
	golden(t, "monitor_verbose", text.Bytes())
	golden(t, "monitor_json", ndjson.Bytes())
}

// TestMonitorEventHeaders checks the translation of the decoded headers.
func TestMonitorEventHeaders(t *testing.T) {
	ev := datapath.Event{
		Type: "from-endpoint", Proto: 6,
		IP:  &datapath.IPHeader{TTL: 64, TOS: 1, Length: 40, ID: 2, DF: true, MF: true, FragOff: 8, FlowLabel: 3},
		TCP: &datapath.TCPHeader{Flags: 0xff, Seq: 4, Ack: 5, Window: 6},
	}
	me := toMonitorEvent(ev, time.Time{}, func(int) string { return "" })
	if want := (MonitorIP{TTL: 64, TOS: 1, Length: 40, ID: 2, DF: true, MF: true, FragOff: 8, FlowLabel: 3}); me.IP == nil || *me.IP != want {
		t.Errorf("ip %+v, want %+v", me.IP, want)
	}
	if got, want := strings.Join(me.TCP.Flags, ","), "FIN,SYN,RST,PSH,ACK,URG,ECE,CWR"; got != want {
		t.Errorf("tcp flags %s, want %s", got, want)
	}
	if me.TCP.Seq != 4 || me.TCP.Ack != 5 || me.TCP.Window != 6 {
		t.Errorf("tcp %+v", me.TCP)
	}
	ev.TCP.Flags = 0
	if me := toMonitorEvent(ev, time.Time{}, func(int) string { return "" }); me.TCP.Flags == nil {
		t.Error("no TCP flags: want an empty list, not null")
	}
	ev = datapath.Event{Type: "to-stack", Reason: "pass-not-ip"}
	if me := toMonitorEvent(ev, time.Time{}, func(int) string { return "" }); me.IP != nil || me.TCP != nil || me.UDP != nil || me.ICMP != nil {
		t.Errorf("headers on an event without any: %+v", me)
	}
	if got := formatEvent(MonitorEvent{Type: "to-stack", Reason: "pass-not-ip"}, true); strings.Contains(got, "\n") {
		t.Errorf("verbose event without headers has header lines: %q", got)
	}
}
