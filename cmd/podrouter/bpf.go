package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"text/tabwriter"

	"github.com/podrouter/podrouter/config"
	"github.com/podrouter/podrouter/datapath"
)

const bpfUsage = `podrouter bpf stats|endpoint list|ct list|ct flush|nexthop list|hook list [--pin-dir DIR] [-o json] [--all]
  Views of the pinned eBPF maps and links; they work whether or not the
  daemon runs. Run in the node's network namespace (interface names and
  hooks are resolved there). Only "ct flush" writes: it deletes conntrack
  entries (their flows start over as new, nothing is dropped).
  ct list|flush filters: --ip A (either end), --port N (either end; ICMP:
  echo identifier), --proto tcp|udp|icmp|icmpv6. Flush without filters
  deletes every entry.`

// cmdBPF reads the pinned maps directly (not through the daemon).
func cmdBPF(args []string) error {
	if len(args) == 0 {
		return usageError{"bpf: missing subcommand\n" + bpfUsage}
	}
	what := args[0]
	rest := args[1:]
	switch what {
	case "endpoint", "nexthop", "hook":
		if len(rest) == 0 || rest[0] != "list" {
			return usageError{fmt.Sprintf("bpf %s: want \"list\"\n%s", what, bpfUsage)}
		}
		rest = rest[1:]
	case "ct":
		if len(rest) == 0 || (rest[0] != "list" && rest[0] != "flush") {
			return usageError{fmt.Sprintf("bpf ct: want \"list\" or \"flush\"\n%s", bpfUsage)}
		}
		if rest[0] == "flush" {
			what = "ct-flush"
		}
		rest = rest[1:]
	case "stats":
	default:
		return usageError{fmt.Sprintf("bpf: unknown subcommand %q\n%s", what, bpfUsage)}
	}
	fs := flag.NewFlagSet("bpf", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	pinDir := fs.String("pin-dir", config.DefaultPinDir, "the daemon's datapath.pinDir")
	output := fs.String("o", "text", "output format: text or json")
	all := fs.Bool("all", false, "stats: also show zero counters")
	ip := fs.String("ip", "", "ct: entries with this address at either end")
	port := fs.Int("port", -1, "ct: entries with this port at either end (ICMP: echo identifier)")
	proto := fs.String("proto", "", "ct: tcp, udp, icmp or icmpv6")
	if err := fs.Parse(rest); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("bpf %s: unexpected argument %q", what, fs.Arg(0))}
	}
	filter, err := parseCTFilter(*ip, *port, *proto)
	if err != nil {
		return usageError{err.Error()}
	}
	if filter.any() && what != "ct" && what != "ct-flush" {
		return usageError{"--ip, --port and --proto filter conntrack entries: only for ct list|flush"}
	}
	if *output != "text" && *output != "json" {
		return usageError{fmt.Sprintf("-o %q: want text or json", *output)}
	}
	asJSON := *output == "json"
	switch what {
	case "hook":
		return bpfHooks(os.Stdout, *pinDir, asJSON)
	case "ct-flush":
		return bpfFlushCT(os.Stdout, *pinDir, filter, asJSON)
	}
	p, err := datapath.OpenPinned(*pinDir)
	if err != nil {
		return err
	}
	defer p.Close()
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	defer w.Flush()
	switch what {
	case "stats":
		cs, err := p.Counters()
		if err != nil {
			return err
		}
		if !*all {
			cs = slices.DeleteFunc(cs, func(c datapath.Counter) bool { return c.Packets == 0 })
		}
		if asJSON {
			return printJSON(cs)
		}
		fmt.Fprintln(w, "DIRECTION\tREASON\tPACKETS\tBYTES")
		for _, c := range cs {
			fmt.Fprintf(w, "%s\t%s\t%d\t%d\n", c.Direction, c.Reason, c.Packets, c.Bytes)
		}
	case "endpoint":
		eps, err := p.Endpoints()
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(eps)
		}
		fmt.Fprintln(w, "ADDRESS\tIFACE\tID\tPOD MAC\tHOST MAC")
		for _, e := range eps {
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", e.Addr, ifName(e.IfIndex), e.ID, e.PodMAC, e.HostMAC)
		}
	case "ct":
		ct, err := p.Conntrack()
		if err != nil {
			return err
		}
		ct = slices.DeleteFunc(ct, func(e datapath.CTEntry) bool { return !filter.match(e) })
		sortCT(ct)
		if asJSON {
			if ct == nil {
				ct = []datapath.CTEntry{} // [] rather than null
			}
			return printJSON(ct)
		}
		return writeCTTable(os.Stdout, ct, ifName)
	case "nexthop":
		nhs, err := p.NextHops()
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(nhs)
		}
		// Slots spread the ECMP set round robin: show each next hop once.
		type key struct {
			fam, ifindex int
			src, dst     string
		}
		slots := map[key]int{}
		var order []key
		for _, nh := range nhs {
			k := key{nh.Family, nh.IfIndex, nh.SrcMAC.String(), nh.DstMAC.String()}
			if slots[k] == 0 {
				order = append(order, k)
			}
			slots[k]++
		}
		fmt.Fprintln(w, "FAMILY\tUPLINK\tSRC MAC\tDST MAC\tSLOTS")
		for _, k := range order {
			fmt.Fprintf(w, "ipv%d\t%s\t%s\t%s\t%d\n", k.fam, ifName(k.ifindex), k.src, k.dst, slots[k])
		}
	}
	return nil
}

// CTFlushReport is the result of `bpf ct flush -o json`.
type CTFlushReport struct {
	Deleted int `json:"deleted"`
}

func bpfFlushCT(out io.Writer, pinDir string, f ctFilter, asJSON bool) error {
	match := f.match
	if !f.any() {
		match = nil // everything
	}
	n, err := datapath.FlushConntrack(pinDir, match)
	if err != nil {
		return fmt.Errorf("flush conntrack (%d entries deleted): %w", n, err)
	}
	if asJSON {
		return printJSON(CTFlushReport{Deleted: n})
	}
	_, err = fmt.Fprintf(out, "deleted %d conntrack entries\n", n)
	return err
}

// HookReport is one interface with a podrouter pin or a tcx ingress program.
type HookReport struct {
	IfName   string   `json:"ifName"`
	IfIndex  int      `json:"ifIndex"`
	Uplink   bool     `json:"uplink"`
	Pinned   bool     `json:"pinned"`             // podrouter holds a link pin for it
	PinnedID uint32   `json:"pinnedProgramID"`    // program of the pinned link
	Programs []uint32 `json:"programs,omitempty"` // every program on tcx ingress, in order
}

func bpfHooks(out io.Writer, pinDir string, asJSON bool) error {
	pins, err := datapath.PinnedLinks(pinDir)
	if err != nil {
		return err
	}
	by := map[string]*HookReport{}
	var order []string
	for _, p := range pins {
		by[p.IfName] = &HookReport{IfName: p.IfName, IfIndex: p.IfIndex, Uplink: p.Uplink, Pinned: true, PinnedID: p.ProgID}
		order = append(order, p.IfName)
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return err
	}
	for _, ifi := range ifs {
		progs, err := datapath.HookPrograms(ifi.Index)
		if err != nil || len(progs) == 0 {
			continue
		}
		h, ok := by[ifi.Name]
		if !ok {
			h = &HookReport{IfName: ifi.Name}
			by[ifi.Name] = h
			order = append(order, ifi.Name)
		}
		h.IfIndex, h.Programs = ifi.Index, progs
	}
	slices.Sort(order)
	hooks := make([]HookReport, 0, len(order))
	for _, n := range order {
		hooks = append(hooks, *by[n])
	}
	if asJSON {
		return printJSON(hooks)
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintln(w, "IFACE\tIFINDEX\tROLE\tPINNED PROG\tTCX INGRESS PROGS")
	for _, h := range hooks {
		role := "endpoint"
		if h.Uplink {
			role = "uplink"
		}
		if !h.Pinned {
			role = "not podrouter's"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%v\n", h.IfName, h.IfIndex, role, h.PinnedID, h.Programs)
	}
	return nil
}

func ifName(idx int) string {
	if ifi, err := net.InterfaceByIndex(idx); err == nil {
		return ifi.Name
	}
	return fmt.Sprintf("if%d", idx)
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
