package main

import (
	"cmp"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/podrouter/podrouter/datapath"
)

// ctFilter selects conntrack entries for `bpf ct list|flush`; zero fields
// match anything.
type ctFilter struct {
	IP    netip.Addr // either end
	Port  int        // either end's port (ICMP echo: the identifier); -1 any
	Proto uint8      // IP protocol number; 0 any
}

var protoNumbers = map[string]uint8{"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}

// parseCTFilter reads the --ip, --port and --proto flag values.
func parseCTFilter(ip string, port int, proto string) (ctFilter, error) {
	f := ctFilter{Port: port}
	if ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return f, fmt.Errorf("--ip %q: not an IP address", ip)
		}
		f.IP = a.Unmap()
	}
	if port < -1 || port > 65535 {
		return f, fmt.Errorf("--port %d: want 0..65535", port)
	}
	if proto != "" {
		n, ok := protoNumbers[strings.ToLower(proto)]
		if !ok {
			return f, fmt.Errorf("--proto %q: want tcp, udp, icmp or icmpv6", proto)
		}
		f.Proto = n
	}
	return f, nil
}

func (f ctFilter) any() bool { return f.IP.IsValid() || f.Port >= 0 || f.Proto != 0 }

func (f ctFilter) match(e datapath.CTEntry) bool {
	if f.IP.IsValid() && e.Src.Addr().Unmap() != f.IP && e.Dst.Addr().Unmap() != f.IP {
		return false
	}
	if f.Port >= 0 && int(e.Src.Port()) != f.Port && int(e.Dst.Port()) != f.Port {
		return false
	}
	return f.Proto == 0 || e.Proto == f.Proto
}

// sortCT orders entries by protocol, source, destination: stable output
// for tables, JSON and diffs between runs.
func sortCT(es []datapath.CTEntry) {
	slices.SortFunc(es, func(a, b datapath.CTEntry) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), a.Src.Compare(b.Src), a.Dst.Compare(b.Dst))
	})
}

func isICMP(proto uint8) bool { return proto == 1 || proto == 58 }

// writeCTTable renders conntrack entries as the `bpf ct list` table.
// ifname names an ingress ifindex (injected: the table is a pure function
// of its input).
func writeCTTable(out io.Writer, es []datapath.CTEntry, ifname func(int) string) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PROTO\tSOURCE\tDESTINATION\tINGRESS\tPACKETS\tBYTES\tAGE\tEXPIRES\tFLAGS")
	for _, e := range es {
		src, dst := e.Src.String(), e.Dst.String()
		var flags []string
		if isICMP(e.Proto) {
			// Both "ports" hold the echo identifier.
			src, dst = e.Src.Addr().String(), e.Dst.Addr().String()
			flags = append(flags, fmt.Sprintf("echo-id=%d", e.Src.Port()))
		}
		if e.SeenReply {
			flags = append(flags, "seen-reply")
		}
		if e.Closing {
			flags = append(flags, "closing")
		}
		if e.Stack {
			flags = append(flags, "stack")
		}
		expires := e.Expires.Truncate(time.Second).String()
		if e.Expires < 0 {
			expires = "expired"
		}
		fl := strings.Join(flags, ",")
		if fl == "" {
			fl = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d/%d\t%d/%d\t%s\t%s\t%s\n", protoName(e.Proto), src, dst, ifname(e.IngressIndex),
			e.Packets[0], e.Packets[1], e.Bytes[0], e.Bytes[1], e.Age.Truncate(time.Second), expires, fl)
	}
	return w.Flush()
}
