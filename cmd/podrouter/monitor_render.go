package main

import (
	"fmt"
	"strings"

	"github.com/podrouter/podrouter/api"
)

var protoNames = map[uint8]string{1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6"}

func protoName(p uint8) string {
	if n, ok := protoNames[p]; ok {
		return n
	}
	return fmt.Sprintf("proto-%d", p)
}

// formatEvent renders one event like `cilium monitor` does: direction,
// endpoint and interface, conntrack verdict, then the flow. Verbose adds
// length and time, then one indented line per decoded header (tcpdump-like).
func formatEvent(ev api.MonitorEvent, verbose bool) string {
	iface := func(idx int, name string) string {
		if name != "" {
			return fmt.Sprintf("%s(%d)", name, idx)
		}
		return fmt.Sprintf("ifindex %d", idx)
	}
	flow := fmt.Sprintf("%s -> %s %s", ev.Src.Addr(), ev.Dst.Addr(), protoName(ev.Proto))
	if ev.Proto == 6 || ev.Proto == 17 {
		flow = fmt.Sprintf("%s -> %s %s", ev.Src, ev.Dst, protoName(ev.Proto))
	}
	if !ev.Src.Addr().IsValid() {
		flow = "non-IP frame" // ARP and the like: the programs decode no addresses
	}
	var b strings.Builder
	switch ev.Type {
	case "drop":
		fmt.Fprintf(&b, "xx drop (%s) on %s", ev.Reason, iface(ev.IfIndex, ev.IfName))
	case "to-stack":
		fmt.Fprintf(&b, "-> stack (%s) from %s", ev.Reason, iface(ev.IfIndex, ev.IfName))
	case "from-endpoint", "from-network":
		fmt.Fprintf(&b, "<- %s", ev.Type)
		if ev.EndpointID != 0 {
			fmt.Fprintf(&b, " endpoint %d", ev.EndpointID)
		}
		fmt.Fprintf(&b, " on %s", iface(ev.IfIndex, ev.IfName))
		if ev.CTVerdict != "" {
			fmt.Fprintf(&b, " ct %s", ev.CTVerdict)
		}
	default: // to-network, to-endpoint
		fmt.Fprintf(&b, "-> %s", ev.Type)
		if ev.EndpointID != 0 {
			fmt.Fprintf(&b, " endpoint %d", ev.EndpointID)
		}
		fmt.Fprintf(&b, " via %s", iface(ev.Target, ev.TargetName))
		if ev.Reason != "" {
			fmt.Fprintf(&b, " (%s)", ev.Reason)
		}
	}
	fmt.Fprintf(&b, ": %s", flow)
	if verbose {
		fmt.Fprintf(&b, " len %d at %s", ev.Len, ev.Time.Format("15:04:05.000000"))
		for _, l := range headerLines(ev) {
			b.WriteString("\n  " + l)
		}
	}
	return b.String()
}

// headerLines renders the decoded headers of ev, IP first.
func headerLines(ev api.MonitorEvent) []string {
	if ev.IP == nil {
		return nil
	}
	var lines []string
	var b strings.Builder
	ip := ev.IP
	if ev.Src.Addr().Is4() {
		fmt.Fprintf(&b, "IPv4 ttl %d", ip.TTL)
		if ip.TOS != 0 {
			fmt.Fprintf(&b, " tos %#x", ip.TOS)
		}
		fmt.Fprintf(&b, " id %d", ip.ID)
		if ip.DF {
			b.WriteString(" DF")
		}
		if ip.MF {
			b.WriteString(" MF")
		}
		if ip.FragOff != 0 {
			fmt.Fprintf(&b, " offset %d", ip.FragOff)
		}
	} else {
		fmt.Fprintf(&b, "IPv6 hlim %d", ip.TTL)
		if ip.TOS != 0 {
			fmt.Fprintf(&b, " tc %#x", ip.TOS)
		}
		if ip.FlowLabel != 0 {
			fmt.Fprintf(&b, " flowlabel 0x%05x", ip.FlowLabel)
		}
	}
	fmt.Fprintf(&b, " len %d", ip.Length)
	lines = append(lines, b.String())
	switch {
	case ev.TCP != nil:
		t := ev.TCP
		letters, ack := "", false
		for _, name := range t.Flags {
			for _, f := range api.TCPFlags {
				if f.Name == name {
					letters += f.Letter
				}
			}
			ack = ack || name == "ACK"
		}
		if letters == "" {
			letters = "none"
		}
		l := fmt.Sprintf("TCP %s -> %s flags [%s] seq %d", ev.Src, ev.Dst, letters, t.Seq)
		if ack {
			l += fmt.Sprintf(" ack %d", t.Ack)
		}
		lines = append(lines, l+fmt.Sprintf(" win %d", t.Window))
	case ev.UDP != nil:
		lines = append(lines, fmt.Sprintf("UDP %s -> %s len %d", ev.Src, ev.Dst, ev.UDP.Length))
	case ev.ICMP != nil:
		lines = append(lines, icmpLine(ev.Proto == 58, ev.ICMP))
	}
	return lines
}

// ICMP and ICMPv6 type names, and code names by type.
var (
	icmp4Types = map[uint8]string{0: "echo reply", 3: "destination unreachable", 4: "source quench", 5: "redirect",
		8: "echo request", 11: "time exceeded", 12: "parameter problem", 13: "timestamp request", 14: "timestamp reply"}
	icmp4Codes = map[uint8]map[uint8]string{
		3: {0: "net unreachable", 1: "host unreachable", 2: "protocol unreachable", 3: "port unreachable",
			4: "fragmentation needed", 9: "net prohibited", 10: "host prohibited", 13: "administratively prohibited"},
		5:  {0: "for net", 1: "for host"},
		11: {0: "ttl exceeded in transit", 1: "fragment reassembly time exceeded"},
	}
	icmp6Types = map[uint8]string{1: "destination unreachable", 2: "packet too big", 3: "time exceeded",
		4: "parameter problem", 128: "echo request", 129: "echo reply", 133: "router solicitation",
		134: "router advertisement", 135: "neighbor solicitation", 136: "neighbor advertisement", 137: "redirect"}
	icmp6Codes = map[uint8]map[uint8]string{
		1: {0: "no route", 1: "administratively prohibited", 3: "address unreachable", 4: "port unreachable"},
		3: {0: "hop limit exceeded in transit", 1: "fragment reassembly time exceeded"},
	}
)

// icmpLine renders an ICMP header like `ICMP echo request id 7 seq 3`.
func icmpLine(v6 bool, h *api.MonitorICMP) string {
	proto, types, codes, echo := "ICMP", icmp4Types, icmp4Codes, h.Type == 0 || h.Type == 8
	if v6 {
		proto, types, codes, echo = "ICMPv6", icmp6Types, icmp6Codes, h.Type == 128 || h.Type == 129
	}
	var b strings.Builder
	b.WriteString(proto)
	if n, ok := types[h.Type]; ok {
		b.WriteString(" " + n)
	} else {
		fmt.Fprintf(&b, " type %d", h.Type)
	}
	if echo {
		fmt.Fprintf(&b, " id %d seq %d", h.ID, h.Seq)
	}
	if n, ok := codes[h.Type][h.Code]; ok {
		fmt.Fprintf(&b, " code %d (%s)", h.Code, n)
	} else if h.Code != 0 {
		fmt.Fprintf(&b, " code %d", h.Code)
	}
	if h.MTU != 0 {
		fmt.Fprintf(&b, " mtu %d", h.MTU)
	}
	return b.String()
}
