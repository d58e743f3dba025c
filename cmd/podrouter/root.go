package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/podrouter/podrouter/api"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "podrouter",
		Short: "BGP node routing for bare-metal Kubernetes",
		Long: `podrouter is a node routing daemon for bare-metal Kubernetes on a leaf/spine
L3 fabric: an embedded BGP speaker advertises the node's pod CIDRs to its
top-of-rack routers and accepts only the default route, which goes into the
kernel (ECMP); an eBPF fast path forwards pod traffic.

"podrouter run" starts the daemon; the other commands inspect or steer a
running one (over its local API socket) or read its pinned eBPF maps.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// A bare "podrouter" prints the help; it is not an error.
		Args: noArgs,
		RunE: showHelp,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{c.CommandPath(), err}
	})
	root.AddGroup(&cobra.Group{ID: "daemon", Title: "Daemon:"}, &cobra.Group{ID: "inspect", Title: "Inspect and steer a running daemon:"})
	for _, c := range []*cobra.Command{newRunCmd(), newCheckCmd()} {
		c.GroupID = "daemon"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{newStatusCmd(), newDrainCmd(), newMonitorCmd(), newBPFCmd()} {
		c.GroupID = "inspect"
		root.AddCommand(c)
	}
	root.AddCommand(newVersionCmd())
	return root
}

// output is the -o flag: table (text) or json.
type output struct{ format string }

func (o *output) register(c *cobra.Command, def string) {
	c.Flags().StringVarP(&o.format, "output", "o", def, "output format: "+def+" or json")
	c.PreRunE = chain(c.PreRunE, func(c *cobra.Command, _ []string) error {
		if o.format != def && o.format != "json" {
			return usageError{c.CommandPath(), fmt.Errorf("-o %q: want %s or json", o.format, def)}
		}
		return nil
	})
	_ = c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{def, "json"}, cobra.ShellCompDirectiveNoFileComp))
}

func (o *output) json() bool { return o.format == "json" }

func chain(a, b func(*cobra.Command, []string) error) func(*cobra.Command, []string) error {
	if a == nil {
		return b
	}
	return func(c *cobra.Command, args []string) error {
		if err := a(c, args); err != nil {
			return err
		}
		return b(c, args)
	}
}

// socketFlag is --socket: the daemon's local API.
func socketFlag(c *cobra.Command, socket *string) {
	c.Flags().StringVar(socket, "socket", api.DefaultSocket, "the daemon's local API socket (localAPI.socket)")
	_ = c.MarkFlagFilename("socket", "sock")
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newVersionCmd() *cobra.Command {
	var o output
	c := &cobra.Command{
		Use:   "version",
		Short: "Print podrouter's version",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if o.json() {
				return printJSON(c.OutOrStdout(), struct {
					Version string `json:"version"`
				}{version})
			}
			_, err := fmt.Fprintln(c.OutOrStdout(), version)
			return err
		},
	}
	o.register(c, "text")
	return c
}

// noArgs refuses positional arguments as a usage error.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		if c.HasSubCommands() {
			return usageError{c.CommandPath(), fmt.Errorf("unknown command %q for %q", args[0], c.CommandPath())}
		}
		return usageError{c.CommandPath(), fmt.Errorf("unexpected argument %q", args[0])}
	}
	return nil
}

// showHelp is the Run of a command that only groups others.
func showHelp(c *cobra.Command, _ []string) error { return c.Help() }
