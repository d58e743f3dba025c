package daemon

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podrouter/podrouter/api"
	"github.com/podrouter/podrouter/datapath"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// TestMonitorJSONGolden pins the /v1/monitor stream (and `podrouter monitor
// -o json`): each datapath event as the daemon sends it. The CLI's golden
// test renders this very file.
func TestMonitorJSONGolden(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 1000, time.UTC)
	names := map[int]string{3: "up1", 12: "veth1a2b"}
	var ndjson bytes.Buffer
	for i, ev := range monitorFixture() {
		me := monitorEvent(ev, at.Add(time.Duration(i)*time.Millisecond), func(i int) string { return names[i] })
		line, err := json.Marshal(me)
		if err != nil {
			t.Fatal(err)
		}
		ndjson.Write(append(line, '\n'))
	}
	path := filepath.Join("testdata", "monitor_json.golden")
	if *update {
		if err := os.WriteFile(path, ndjson.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ndjson.Bytes(), want) {
		t.Errorf("%s differs (go test -run %s -update rewrites it)\n--- got\n%s\n--- want\n%s", path, t.Name(), ndjson.Bytes(), want)
	}
}

// TestMonitorEventHeaders checks the translation of the decoded headers.
func TestMonitorEventHeaders(t *testing.T) {
	ev := datapath.Event{
		Type: "from-endpoint", Proto: 6,
		IP:  &datapath.IPHeader{TTL: 64, TOS: 1, Length: 40, ID: 2, DF: true, MF: true, FragOff: 8, FlowLabel: 3},
		TCP: &datapath.TCPHeader{Flags: 0xff, Seq: 4, Ack: 5, Window: 6},
	}
	me := monitorEvent(ev, time.Time{}, func(int) string { return "" })
	if want := (api.MonitorIP{TTL: 64, TOS: 1, Length: 40, ID: 2, DF: true, MF: true, FragOff: 8, FlowLabel: 3}); me.IP == nil || *me.IP != want {
		t.Errorf("ip %+v, want %+v", me.IP, want)
	}
	if got, want := strings.Join(me.TCP.Flags, ","), "FIN,SYN,RST,PSH,ACK,URG,ECE,CWR"; got != want {
		t.Errorf("tcp flags %s, want %s", got, want)
	}
	if me.TCP.Seq != 4 || me.TCP.Ack != 5 || me.TCP.Window != 6 {
		t.Errorf("tcp %+v", me.TCP)
	}
	ev.TCP.Flags = 0
	if me := monitorEvent(ev, time.Time{}, func(int) string { return "" }); me.TCP.Flags == nil {
		t.Error("no TCP flags: want an empty list, not null")
	}
	ev = datapath.Event{Type: "to-stack", Reason: "pass-not-ip"}
	if me := monitorEvent(ev, time.Time{}, func(int) string { return "" }); me.IP != nil || me.TCP != nil || me.UDP != nil || me.ICMP != nil {
		t.Errorf("headers on an event without any: %+v", me)
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
