package main

import (
	"fmt"
	"io"
	"net"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/podrouter/podrouter/api"
	"github.com/podrouter/podrouter/datapath"
)

// bpfFlags are the flags every `bpf` command takes.
type bpfFlags struct {
	pinDir string
	o      output
}

func (f *bpfFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.pinDir, "pin-dir", datapath.DefaultPinDir, "the daemon's datapath.pinDir")
	_ = c.MarkFlagDirname("pin-dir")
	f.o.register(c, "text")
}

func newBPFCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "bpf",
		Short: "Read the pinned eBPF maps and links directly",
		Long: `Views of the pinned eBPF maps and links; they work whether or not the
daemon runs. Run them in the node's network namespace (interface names and
hooks are resolved there). Only "ct flush" writes: it deletes conntrack
entries (their flows start over as new, nothing is dropped).`,
		Args: noArgs,
		RunE: showHelp,
	}
	list := func(use, short string) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: noArgs, RunE: showHelp}
	}
	endpoint, nexthop, hook, ct := list("endpoint", "The endpoint map"), list("nexthop", "The next-hop map"),
		list("hook", "The tcx hooks"), list("ct", "The conntrack maps")
	endpoint.AddCommand(bpfCmd("list", "Local pods in the endpoint map: address, veth, endpoint id, MACs", bpfEndpoints))
	nexthop.AddCommand(bpfCmd("list", "The default route's next hops cached for the fast path, per family", bpfNextHops))
	hook.AddCommand(bpfCmd("list", "Interfaces with a podrouter pin or a tcx ingress program", bpfHooks))
	ct.AddCommand(ctCmd("list", "List conntrack entries (filtered by --ip, --port, --proto)", bpfListCT),
		ctCmd("flush", "Delete conntrack entries: those matching --ip, --port, --proto, or every one", bpfFlushCT))
	var all bool
	stats := bpfCmd("stats", "Packet and byte counters per direction and verdict reason",
		func(c *cobra.Command, f bpfFlags) error { return bpfStats(c, f, all) })
	stats.Flags().BoolVar(&all, "all", false, "also show zero counters")
	c.AddCommand(stats, endpoint, nexthop, hook, ct)
	return c
}

// bpfCmd builds a leaf `bpf …` command running fn with its flags.
func bpfCmd(use, short string, fn func(*cobra.Command, bpfFlags) error) *cobra.Command {
	var f bpfFlags
	c := &cobra.Command{Use: use, Short: short, Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error { return fn(c, f) }}
	f.register(c)
	return c
}

// ctCmd is a `bpf ct` command with the entry filters.
func ctCmd(use, short string, fn func(*cobra.Command, bpfFlags, ctFilter) error) *cobra.Command {
	var ip, proto string
	var port int
	var f bpfFlags
	c := &cobra.Command{Use: use, Short: short, Args: noArgs}
	c.Flags().StringVar(&ip, "ip", "", "entries with this address at either end")
	c.Flags().IntVar(&port, "port", -1, "entries with this port at either end (ICMP: the echo identifier)")
	c.Flags().StringVar(&proto, "proto", "", "tcp, udp, icmp or icmpv6")
	_ = c.RegisterFlagCompletionFunc("proto", cobra.FixedCompletions([]string{"tcp", "udp", "icmp", "icmpv6"}, cobra.ShellCompDirectiveNoFileComp))
	f.register(c)
	c.RunE = func(c *cobra.Command, _ []string) error {
		filter, err := parseCTFilter(ip, port, proto)
		if err != nil {
			return usageError{c.CommandPath(), err}
		}
		return fn(c, f, filter)
	}
	return c
}

func openPinned(f bpfFlags) (*datapath.Pinned, error) { return datapath.OpenPinned(f.pinDir) }

func bpfStats(c *cobra.Command, f bpfFlags, all bool) error {
	p, err := openPinned(f)
	if err != nil {
		return err
	}
	defer p.Close()
	cs, err := p.Counters()
	if err != nil {
		return err
	}
	if !all {
		cs = slices.DeleteFunc(cs, func(c datapath.Counter) bool { return c.Packets == 0 })
	}
	out := make([]api.Counter, 0, len(cs))
	for _, k := range cs {
		out = append(out, api.Counter(k))
	}
	if f.o.json() {
		return printJSON(c.OutOrStdout(), out)
	}
	w := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DIRECTION\tREASON\tPACKETS\tBYTES")
	for _, k := range out {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\n", k.Direction, k.Reason, k.Packets, k.Bytes)
	}
	return w.Flush()
}

func bpfEndpoints(c *cobra.Command, f bpfFlags) error {
	p, err := openPinned(f)
	if err != nil {
		return err
	}
	defer p.Close()
	eps, err := p.Endpoints()
	if err != nil {
		return err
	}
	out := make([]api.Endpoint, 0, len(eps))
	for _, e := range eps {
		out = append(out, api.Endpoint{Address: e.Addr, IfIndex: e.IfIndex, IfName: ifName(e.IfIndex), ID: e.ID,
			PodMAC: e.PodMAC.String(), HostMAC: e.HostMAC.String()})
	}
	if f.o.json() {
		return printJSON(c.OutOrStdout(), out)
	}
	w := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ADDRESS\tIFACE\tID\tPOD MAC\tHOST MAC")
	for _, e := range out {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", e.Address, e.IfName, e.ID, e.PodMAC, e.HostMAC)
	}
	return w.Flush()
}

func bpfListCT(c *cobra.Command, f bpfFlags, filter ctFilter) error {
	p, err := openPinned(f)
	if err != nil {
		return err
	}
	defer p.Close()
	ct, err := p.Conntrack()
	if err != nil {
		return err
	}
	ct = slices.DeleteFunc(ct, func(e datapath.CTEntry) bool { return !filter.match(e) })
	sortCT(ct)
	if f.o.json() {
		out := make([]api.CTEntry, 0, len(ct)) // [] rather than null
		for _, e := range ct {
			out = append(out, api.CTEntry(e))
		}
		return printJSON(c.OutOrStdout(), out)
	}
	return writeCTTable(c.OutOrStdout(), ct, ifName)
}

func bpfNextHops(c *cobra.Command, f bpfFlags) error {
	p, err := openPinned(f)
	if err != nil {
		return err
	}
	defer p.Close()
	nhs, err := p.NextHops()
	if err != nil {
		return err
	}
	out := make([]api.NextHop, 0, len(nhs))
	for _, nh := range nhs {
		out = append(out, api.NextHop{Family: fmt.Sprintf("ipv%d", nh.Family), Slot: nh.Slot, IfIndex: nh.IfIndex,
			IfName: ifName(nh.IfIndex), SrcMAC: nh.SrcMAC.String(), DstMAC: nh.DstMAC.String()})
	}
	if f.o.json() {
		return printJSON(c.OutOrStdout(), out)
	}
	// Slots spread the ECMP set round robin: show each next hop once.
	type key struct{ fam, ifname, src, dst string }
	slots := map[key]int{}
	var order []key
	for _, nh := range out {
		k := key{nh.Family, nh.IfName, nh.SrcMAC, nh.DstMAC}
		if slots[k] == 0 {
			order = append(order, k)
		}
		slots[k]++
	}
	w := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "FAMILY\tUPLINK\tSRC MAC\tDST MAC\tSLOTS")
	for _, k := range order {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\n", k.fam, k.ifname, k.src, k.dst, slots[k])
	}
	return w.Flush()
}

func bpfFlushCT(c *cobra.Command, f bpfFlags, filter ctFilter) error {
	match := filter.match
	if !filter.any() {
		match = nil // everything
	}
	n, err := datapath.FlushConntrack(f.pinDir, match)
	if err != nil {
		return fmt.Errorf("flush conntrack (%d entries deleted): %w", n, err)
	}
	if f.o.json() {
		return printJSON(c.OutOrStdout(), api.CTFlush{Deleted: n})
	}
	_, err = fmt.Fprintf(c.OutOrStdout(), "deleted %d conntrack entries\n", n)
	return err
}

func bpfHooks(c *cobra.Command, f bpfFlags) error {
	hooks, err := listHooks(f.pinDir)
	if err != nil {
		return err
	}
	if f.o.json() {
		return printJSON(c.OutOrStdout(), hooks)
	}
	return writeHooks(c.OutOrStdout(), hooks)
}

// listHooks joins podrouter's link pins with every interface's tcx ingress
// programs.
func listHooks(pinDir string) ([]api.Hook, error) {
	pins, err := datapath.PinnedLinks(pinDir)
	if err != nil {
		return nil, err
	}
	by := map[string]*api.Hook{}
	var order []string
	for _, p := range pins {
		by[p.IfName] = &api.Hook{IfName: p.IfName, IfIndex: p.IfIndex, Uplink: p.Uplink, Pinned: true, PinnedID: p.ProgID}
		order = append(order, p.IfName)
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for _, ifi := range ifs {
		progs, err := datapath.HookPrograms(ifi.Index)
		if err != nil || len(progs) == 0 {
			continue
		}
		h, ok := by[ifi.Name]
		if !ok {
			h = &api.Hook{IfName: ifi.Name}
			by[ifi.Name] = h
			order = append(order, ifi.Name)
		}
		h.IfIndex, h.Programs = ifi.Index, progs
	}
	slices.Sort(order)
	hooks := make([]api.Hook, 0, len(order))
	for _, n := range order {
		hooks = append(hooks, *by[n])
	}
	return hooks, nil
}

func writeHooks(out io.Writer, hooks []api.Hook) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
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
	return w.Flush()
}

// ifName names an interface of this network namespace by its index.
func ifName(idx int) string {
	if ifi, err := net.InterfaceByIndex(idx); err == nil {
		return ifi.Name
	}
	return fmt.Sprintf("if%d", idx)
}
