package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podrouter/podrouter/api"
)

// TestFormatEventGolden pins the `podrouter monitor` line format.
func TestFormatEventGolden(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 1000, time.UTC)
	pod1, pod2 := netip.MustParseAddrPort("10.0.1.2:0"), netip.MustParseAddrPort("10.0.3.3:0")
	tcpA, tcpB := netip.MustParseAddrPort("10.0.1.2:40000"), netip.MustParseAddrPort("10.0.3.3:80")
	cases := []struct {
		ev   api.MonitorEvent
		v    bool
		want string
	}{
		{api.MonitorEvent{Type: "from-endpoint", EndpointID: 7, IfIndex: 12, IfName: "veth1a2b", CTVerdict: "new", Proto: 1, Src: pod1, Dst: pod2, Len: 98, Time: at}, false,
			"<- from-endpoint endpoint 7 on veth1a2b(12) ct new: 10.0.1.2 -> 10.0.3.3 icmp"},
		{api.MonitorEvent{Type: "to-network", Target: 3, TargetName: "up1", Reason: "fwd-nexthop-cache", Proto: 1, Src: pod1, Dst: pod2, Len: 98, Time: at}, true,
			"-> to-network via up1(3) (fwd-nexthop-cache): 10.0.1.2 -> 10.0.3.3 icmp len 98 at 12:00:00.000001"},
		{api.MonitorEvent{Type: "from-network", IfIndex: 3, IfName: "up1", CTVerdict: "reply", Proto: 6, Src: tcpB, Dst: tcpA, Len: 60, Time: at}, false,
			"<- from-network on up1(3) ct reply: 10.0.3.3:80 -> 10.0.1.2:40000 tcp"},
		{api.MonitorEvent{Type: "to-endpoint", EndpointID: 7, Target: 12, Proto: 6, Src: tcpB, Dst: tcpA, Time: at}, false,
			"-> to-endpoint endpoint 7 via ifindex 12: 10.0.3.3:80 -> 10.0.1.2:40000 tcp"},
		{api.MonitorEvent{Type: "drop", Reason: "drop-malformed", IfIndex: 12, IfName: "veth1a2b", Proto: 17, Src: tcpA, Dst: tcpB, Time: at}, false,
			"xx drop (drop-malformed) on veth1a2b(12): 10.0.1.2:40000 -> 10.0.3.3:80 udp"},
		{api.MonitorEvent{Type: "to-stack", Reason: "pass-ttl", IfIndex: 12, Proto: 58, Src: netip.MustParseAddrPort("[fd00:10:0:1::2]:0"), Dst: netip.MustParseAddrPort("[fd00:10:0:3::3]:0"), Time: at}, false,
			"-> stack (pass-ttl) from ifindex 12: fd00:10:0:1::2 -> fd00:10:0:3::3 icmpv6"},
		{api.MonitorEvent{Type: "to-stack", Reason: "pass-not-ip", IfIndex: 3, IfName: "up1", Time: at}, false,
			"-> stack (pass-not-ip) from up1(3): non-IP frame"},
	}
	for _, c := range cases {
		if got := formatEvent(c.ev, c.v); got != c.want {
			t.Errorf("got  %q\nwant %q", got, c.want)
		}
	}
}

// TestMonitorVerboseGolden pins `podrouter monitor -v`: each event of the
// daemon's NDJSON stream (the daemon's golden file, what the local API
// sends) decoded as the CLI does and formatted.
func TestMonitorVerboseGolden(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "daemon", "testdata", "monitor_json.golden"))
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	for line := range bytes.Lines(b) {
		var got api.MonitorEvent
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
	if got := formatEvent(api.MonitorEvent{Type: "to-stack", Reason: "pass-not-ip"}, true); strings.Contains(got, "\n") {
		t.Errorf("verbose event without headers has header lines: %q", got)
	}
}
