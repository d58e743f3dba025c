package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/podrouter/podrouter/config"
	"github.com/podrouter/podrouter/datapath"
)

// MonitorEvent is one datapath event on the local API's /v1/monitor stream
// (newline-delimited JSON) and in `podrouter monitor -o json`.
type MonitorEvent struct {
	Time       time.Time      `json:"time"`
	Type       string         `json:"type"` // from-endpoint, to-network, from-network, to-endpoint, drop, to-stack
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
}

// MonitorIP is the IPv4 or IPv6 header of a MonitorEvent's packet
// (datapath.IPHeader with JSON names).
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
	Flags  []string `json:"flags"` // names from tcpFlags, in bit order
	Seq    uint32   `json:"seq"`
	Ack    uint32   `json:"ack"`
	Window uint16   `json:"window"` // as sent, unscaled
}

// MonitorUDP is the UDP header of a MonitorEvent's packet (datapath.UDPHeader).
type MonitorUDP struct {
	Length uint16 `json:"length"`
}

// MonitorICMP is the ICMP or ICMPv6 header of a MonitorEvent's packet
// (datapath.ICMPHeader).
type MonitorICMP struct {
	Type uint8  `json:"type"`
	Code uint8  `json:"code"`
	ID   uint16 `json:"id,omitempty"`  // echo
	Seq  uint16 `json:"seq,omitempty"` // echo
	MTU  uint32 `json:"mtu,omitempty"` // fragmentation needed, packet too big
}

// tcpFlags are the TCP flags in bit order (FIN is bit 0, as
// datapath.TCPFlagFIN) with tcpdump's letters.
var tcpFlags = [8]struct{ name, letter string }{
	{"FIN", "F"}, {"SYN", "S"}, {"RST", "R"}, {"PSH", "P"}, {"ACK", "."}, {"URG", "U"}, {"ECE", "E"}, {"CWR", "W"},
}

// toMonitorEvent translates a datapath event for the /v1/monitor stream.
func toMonitorEvent(ev datapath.Event, now time.Time, ifname func(int) string) MonitorEvent {
	me := MonitorEvent{
		Time: now, Type: ev.Type, CTVerdict: ev.CTVerdict, Reason: ev.Reason,
		IfIndex: ev.IfIndex, IfName: ifname(ev.IfIndex), Target: ev.Target, EndpointID: ev.EndpointID,
		Proto: ev.Proto, Src: ev.Src, Dst: ev.Dst, Len: ev.Len,
	}
	if ev.Target != 0 {
		me.TargetName = ifname(ev.Target)
	}
	if ev.IP != nil {
		ip := MonitorIP(*ev.IP)
		me.IP = &ip
	}
	if ev.TCP != nil {
		flags := []string{}
		for i, f := range tcpFlags {
			if ev.TCP.Flags&(1<<i) != 0 {
				flags = append(flags, f.name)
			}
		}
		me.TCP = &MonitorTCP{Flags: flags, Seq: ev.TCP.Seq, Ack: ev.TCP.Ack, Window: ev.TCP.Window}
	}
	if ev.UDP != nil {
		udp := MonitorUDP(*ev.UDP)
		me.UDP = &udp
	}
	if ev.ICMP != nil {
		icmp := MonitorICMP(*ev.ICMP)
		me.ICMP = &icmp
	}
	return me
}

// monitorTypes are the event types a filter may name.
var monitorTypes = []string{"from-endpoint", "to-network", "from-network", "to-endpoint", "drop", "to-stack"}

// monitorFilter is what `podrouter monitor` asks the daemon for.
type monitorFilter struct {
	Types    []string
	From, To netip.Addr // zero: any
}

func (f monitorFilter) match(ev MonitorEvent) bool {
	if f.From.IsValid() && ev.Src.Addr() != f.From {
		return false
	}
	if f.To.IsValid() && ev.Dst.Addr() != f.To {
		return false
	}
	return true
}

func (f monitorFilter) query() string {
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

func parseMonitorFilter(v url.Values) (monitorFilter, error) {
	var f monitorFilter
	for _, t := range v["type"] {
		if !slices.Contains(monitorTypes, t) {
			return f, fmt.Errorf("type %q: want one of %s", t, strings.Join(monitorTypes, ", "))
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

// serveMonitor streams datapath events as NDJSON until the client goes.
// Tracing is on only while somebody listens.
func serveMonitor(dp *datapath.Datapath, ifname func(int) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := parseMonitorFilter(r.URL.Query())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if dp == nil {
			http.Error(w, "the eBPF fast path is disabled: no datapath events", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		flusher, _ := w.(http.Flusher)
		if flusher != nil {
			flusher.Flush()
		}
		enc := json.NewEncoder(w)
		err = dp.Monitor(r.Context(), f.Types, 1, func(ev datapath.Event) {
			me := toMonitorEvent(ev, time.Now(), ifname)
			if !f.match(me) {
				return
			}
			if enc.Encode(me) == nil && flusher != nil {
				flusher.Flush()
			}
		})
		if err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintf(w, "{\"error\":%q}\n", err.Error())
		}
	}
}

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
func formatEvent(ev MonitorEvent, verbose bool) string {
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
func headerLines(ev MonitorEvent) []string {
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
			for _, f := range tcpFlags {
				if f.name == name {
					letters += f.letter
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
func icmpLine(v6 bool, h *MonitorICMP) string {
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

func cmdMonitor(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("monitor", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	socket := fs.String("socket", config.DefaultSocket, "podrouter's local API socket")
	output := fs.String("o", "text", "output: text or json")
	verbose := fs.Bool("v", false, "verbose: lengths, timestamps and decoded IP/TCP/UDP/ICMP headers")
	from := fs.String("from", "", "only events whose source address is this")
	to := fs.String("to", "", "only events whose destination address is this")
	var types stringList
	fs.Var(&types, "type", "only events of this type (repeatable): "+strings.Join(monitorTypes, ", "))
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	v := url.Values{"type": types, "from": {*from}, "to": {*to}}
	f, err := parseMonitorFilter(v)
	if err != nil {
		return usageError{err.Error()}
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://podrouter/v1/monitor?"+f.query(), nil)
	client := apiClient(*socket)
	client.Timeout = 0 // a stream
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("is podrouter running? %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("monitor: %s", strings.TrimSpace(string(msg)))
	}
	fmt.Fprintln(os.Stderr, "Listening for datapath events... Press Ctrl-C to quit")
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if *output == "json" {
			fmt.Println(sc.Text())
			continue
		}
		var ev MonitorEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.Type == "" {
			fmt.Fprintln(os.Stderr, sc.Text())
			continue
		}
		fmt.Println(formatEvent(ev, *verbose))
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
