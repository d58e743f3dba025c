package main

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/podrouter/podrouter/api"
)

func newMonitorCmd() *cobra.Command {
	var socket, from, to string
	var types []string
	var verbose bool
	var o output
	c := &cobra.Command{
		Use:   "monitor",
		Short: "Live datapath events (from-endpoint, to-network, from-network, to-endpoint, drop, to-stack)",
		Long: `Follow the eBPF fast path's events live, like "cilium monitor": packets
from pods (from-endpoint) and from the network (from-network) with their
conntrack verdict, where they are forwarded (to-network, to-endpoint),
what is handed to the kernel stack (to-stack) and drops with the reason.
Tracing is switched on only while somebody listens.`,
		Example: `  podrouter monitor --type drop
  podrouter monitor --from 10.0.1.2 -v
  podrouter monitor -o json`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			f, err := api.ParseMonitorFilter(url.Values{"type": types, "from": {from}, "to": {to}})
			if err != nil {
				return usageError{c.CommandPath(), err}
			}
			fmt.Fprintln(c.ErrOrStderr(), "Listening for datapath events... Press Ctrl-C to quit")
			out := c.OutOrStdout()
			return api.NewClient(socket).Monitor(c.Context(), f, func(ev api.MonitorEvent, line []byte) {
				if o.json() {
					fmt.Fprintf(out, "%s\n", line)
					return
				}
				fmt.Fprintln(out, formatEvent(ev, verbose))
			})
		},
	}
	socketFlag(c, &socket)
	fl := c.Flags()
	fl.StringArrayVar(&types, "type", nil, "only events of this type (repeatable): "+strings.Join(api.MonitorTypes, ", "))
	fl.StringVar(&from, "from", "", "only events whose source address is this")
	fl.StringVar(&to, "to", "", "only events whose destination address is this")
	fl.BoolVarP(&verbose, "verbose", "v", false, "lengths, timestamps and decoded IP/TCP/UDP/ICMP headers")
	o.register(c, "text")
	_ = c.RegisterFlagCompletionFunc("type", cobra.FixedCompletions(api.MonitorTypes, cobra.ShellCompDirectiveNoFileComp))
	return c
}
