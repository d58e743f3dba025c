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
			me := MonitorEvent{
				Time: time.Now(), Type: ev.Type, CTVerdict: ev.CTVerdict, Reason: ev.Reason,
				IfIndex: ev.IfIndex, IfName: ifname(ev.IfIndex), Target: ev.Target, EndpointID: ev.EndpointID,
				Proto: ev.Proto, Src: ev.Src, Dst: ev.Dst, Len: ev.Len,
			}
			if ev.Target != 0 {
				me.TargetName = ifname(ev.Target)
			}
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
// endpoint and interface, conntrack verdict, then the flow.
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
	}
	return b.String()
}

func cmdMonitor(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("monitor", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	socket := fs.String("socket", config.DefaultSocket, "podrouter's local API socket")
	output := fs.String("o", "text", "output: text or json")
	verbose := fs.Bool("v", false, "verbose: lengths and timestamps")
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
