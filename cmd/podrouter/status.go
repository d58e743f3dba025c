package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/podrouter/podrouter/api"
	"github.com/podrouter/podrouter/health"
)

func newStatusCmd() *cobra.Command {
	var socket string
	var o output
	c := &cobra.Command{
		Use:   "status",
		Short: "One-screen status of the running daemon",
		Long: `Show the running daemon's status: identity, pod CIDRs and what is
advertised, the drain state, the fast path, the BGP peers with their BGP
and BFD state, the default routes, and warnings.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			st, err := api.NewClient(socket).Status(c.Context())
			if err != nil {
				return err
			}
			if o.json() {
				return printJSON(c.OutOrStdout(), st)
			}
			printStatus(c.OutOrStdout(), st, time.Now())
			return nil
		},
	}
	socketFlag(c, &socket)
	o.register(c, "table")
	return c
}

// printStatus renders the status table; now is when it is read (the
// last reconcile shows as an age).
func printStatus(out io.Writer, r api.Status, now time.Time) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Node:\t%s (router-id %s, AS %d)\n", r.Node, r.RouterID, r.ASN)
	fmt.Fprintf(w, "Pod CIDRs:\t%s\n", joinAny(r.PodCIDRs))
	fmt.Fprintf(w, "Advertised:\t%s\n", joinAny(r.Advertised))
	if r.Drain != "" {
		fmt.Fprintf(w, "Drain:\t%s\n", r.Drain)
	}
	printFastPath(w, r.FastPath)
	printServices(w, r.Services, r.FastPath)
	fmt.Fprintf(w, "Reconcile:\t%d runs, %d errors, last %s ago (%s)\n", r.Reconciles, r.Errors,
		now.Sub(r.LastReconcile).Truncate(time.Millisecond), r.ReconcileTook)
	w.Flush()
	fmt.Fprintln(out, "\nBGP peers:")
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  PEER\tAS\tSTATE\tBFD\tUPTIME\tRCVD\tACCEPTED\tADV\tMAXPFX-TRIPS")
	for _, p := range r.Peers {
		state := p.State.String()
		if p.AdminState != health.AdminUp {
			state += "(" + p.AdminState.String() + ")"
		}
		fmt.Fprintf(w, "  %s\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t%d\n", p.Address, p.ASN, state, orDash(p.BFD.String()), p.Uptime, p.Received, p.Accepted, p.Advertised, p.MaxPrefixTrips)
	}
	w.Flush()
	fmt.Fprintln(out, "\nDefault routes:")
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  FAMILY\tLEARNED\tINSTALLED\tNOTE")
	for _, d := range r.Defaults {
		var note []string
		if d.Holding {
			note = append(note, "startup hold")
		}
		note = append(note, d.Skipped...)
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", d.Family, joinAny(d.Learned), joinAny(d.Installed), orDash(strings.Join(note, "; ")))
	}
	w.Flush()
	if r.LastError != "" {
		fmt.Fprintf(out, "\nLast error: %s\n", r.LastError)
	}
	if len(r.Warnings) > 0 {
		fmt.Fprintln(out, "\nWarnings:")
		for _, s := range r.Warnings {
			fmt.Fprintln(out, "  -", s)
		}
	}
}

// printFastPath writes the datapath lines of the status table: mode,
// attached programs, endpoints and map usage.
func printFastPath(w io.Writer, fp api.FastPath) {
	mode := fp.Mode
	if mode == "" {
		mode = api.ModeKernel
	}
	detail := "fast path " + fp.State.String()
	if fp.Cause != "" {
		detail += ": " + fp.Cause
	}
	if fp.PinDir != "" && fp.State != health.DatapathUnavailable {
		detail += ", pins in " + fp.PinDir
	}
	fmt.Fprintf(w, "Datapath:\t%s (%s)\n", mode, detail)
	if !fp.Enabled || fp.State == health.DatapathUnavailable {
		return
	}
	net := "from-network on " + orDash(strings.Join(fp.FromNetwork, ", "))
	ep := fmt.Sprintf("from-endpoint on %d interfaces", len(fp.FromEndpoint))
	if len(fp.FromEndpoint) > 0 {
		ep += " (" + strings.Join(fp.FromEndpoint, ", ") + ")"
	}
	fmt.Fprintf(w, "Fast path:\t%d programs attached: %s; %s\n", len(fp.Attached), net, ep)
	if u, ok := fp.Usage("endpoints"); ok {
		fmt.Fprintf(w, "Endpoints:\t%d pods hooked, %d/%d addresses in the endpoint map\n", len(fp.FromEndpoint), u.Entries, u.Capacity)
	}
	var ct []string
	for _, m := range fp.Maps {
		if name, ok := strings.CutPrefix(m.Map, "ct_"); ok {
			pct := 0.0
			if m.Capacity > 0 {
				pct = float64(m.Entries) * 100 / float64(m.Capacity)
			}
			ct = append(ct, fmt.Sprintf("%s %d/%d (%.1f%%)", name, m.Entries, m.Capacity, pct))
		}
	}
	if len(ct) > 0 {
		fmt.Fprintf(w, "Conntrack:\t%s\n", strings.Join(ct, ", "))
	} else if fp.MapsErr != "" {
		fmt.Fprintf(w, "Conntrack:\tunknown (%s)\n", fp.MapsErr)
	}
}

// printServices writes how Services pass the fast path: the destinations
// handed to the kernel stack and kube-proxy's mode.
func printServices(w io.Writer, v api.Services, fp api.FastPath) {
	if fp.State != health.DatapathActive {
		return
	}
	to := joinAny(v.PassCIDRs)
	switch {
	case v.Learned && !v.Synced:
		to += " (Service CIDRs not listed yet)"
	case v.Learned:
		to += " (Service CIDRs from the cluster: " + joinAny(v.ServiceCIDRs) + ")"
	}
	fmt.Fprintf(w, "To the stack:\t%s\n", to)
	proxy := v.KubeProxy.String()
	switch v.KubeProxy {
	case health.ProxySupported, health.ProxyUnsupported:
		proxy = v.KubeProxyMode + " mode (" + v.KubeProxy.String() + ")"
	case health.ProxyAbsent:
		proxy = "not found"
	}
	kct := v.KernelConntrack
	if v.KernelConntrackAuto {
		kct += " (auto)"
	}
	fmt.Fprintf(w, "Services:\tkube-proxy %s; translated flows to the stack: kernel conntrack %s\n", proxy, kct)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func joinAny[T fmt.Stringer](xs []T) string {
	if len(xs) == 0 {
		return "-"
	}
	ss := make([]string, len(xs))
	for i, x := range xs {
		ss[i] = x.String()
	}
	slices.Sort(ss)
	return strings.Join(ss, ", ")
}

func newDrainCmd() *cobra.Command {
	var socket string
	var o output
	c := &cobra.Command{
		Use:   "drain",
		Short: "Withdraw the pod CIDRs, close the BGP sessions, remove the default route and stop the daemon",
		Long: `Drain the node and stop the daemon: the pod CIDRs are withdrawn (with
bgp.drain.mode deprefer: first re-advertised depreferred, withdrawn
withdrawAfter later), every session is closed with a Cease NOTIFICATION,
the fast path is detached and podrouter's routes are removed. Waits until
the daemon has exited.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl := api.NewClient(socket)
			reply, err := cl.Drain(c.Context())
			if err != nil {
				return err
			}
			wait, _ := time.ParseDuration(reply.WithdrawAfter) // "" from an old daemon: no deprefer phase
			if wait > 0 && !o.json() {
				fmt.Fprintf(c.OutOrStdout(), "draining: pod CIDRs depreferred, withdrawn in %s\n", wait)
			}
			ctx, cancel := context.WithTimeout(c.Context(), wait+10*time.Second)
			defer cancel()
			if err := cl.WaitGone(ctx); err != nil {
				return fmt.Errorf("drain: daemon did not exit within %s", wait+10*time.Second)
			}
			if o.json() {
				return printJSON(c.OutOrStdout(), struct {
					api.DrainReply
					Drained bool `json:"drained"`
				}{reply, true})
			}
			_, err = fmt.Fprintln(c.OutOrStdout(), "drained")
			return err
		},
	}
	socketFlag(c, &socket)
	o.register(c, "text")
	return c
}
