package main

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
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
