package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/podrouter/podrouter/config"
	"github.com/podrouter/podrouter/daemon"
)

// configFlags are --config and the flags that override the file.
type configFlags struct {
	path     string
	routerID string
	o        config.Overrides
}

func (f *configFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVar(&f.path, "config", "", "config file (YAML; required)")
	fl.StringVar(&f.o.NodeName, "node-name", "", "override node.name (the DaemonSet passes spec.nodeName)")
	fl.StringVar(&f.routerID, "router-id", "", "override node.routerID (IPv4)")
	fl.StringVar(&f.o.LogLevel, "log-level", "", "override log.level: debug, info, warn or error")
	fl.StringVar(&f.o.LogFormat, "log-format", "", "override log.format: text or json")
	fl.StringVar(&f.o.APIAddress, "api-address", "", "override bgp.api.address: loopback ip:port or unix:///path")
	fl.StringVar(&f.o.Socket, "socket", "", "override localAPI.socket")
	fl.StringVar(&f.o.ShutdownMode, "shutdown-mode", "", "override shutdown.mode: graceful-restart or drain")
	_ = c.MarkFlagRequired("config")
	_ = c.MarkFlagFilename("config", "yaml", "yml")
	for flag, values := range map[string][]string{
		"log-level": {"debug", "info", "warn", "error"}, "log-format": {"text", "json"},
		"shutdown-mode": {config.ShutdownGracefulRestart, config.ShutdownDrain},
	} {
		_ = c.RegisterFlagCompletionFunc(flag, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
	}
}

// load runs the config pipeline: decode, these overrides, defaults,
// validation. Every error names the field.
func (f *configFlags) load(c *cobra.Command) (*config.Config, error) {
	if f.routerID != "" {
		a, err := netip.ParseAddr(f.routerID)
		if err != nil {
			return nil, usageError{c.CommandPath(), fmt.Errorf("--router-id %q: not an IP address", f.routerID)}
		}
		f.o.RouterID = a
	}
	return config.Load(f.path, f.o)
}

func newRunCmd() *cobra.Command {
	var f configFlags
	c := &cobra.Command{
		Use:   "run --config FILE [flags]",
		Short: "Run the daemon (flags override the file)",
		Long: `Run the daemon: peer with the ToRs, advertise the pod CIDRs, install the
default route, run the eBPF fast path, serve metrics and the local API.

SIGTERM exits as shutdown.mode says: graceful-restart (the default) leaves
sessions, routes and the fast path in place for the next instance; drain
withdraws, closes the sessions and removes what podrouter installed.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, err := f.load(c)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return daemon.Run(ctx, cfg, daemon.Options{Log: newLogger(cfg.Log, c.ErrOrStderr()), Version: version})
		},
	}
	f.register(c)
	return c
}

func newCheckCmd() *cobra.Command {
	var f configFlags
	var o output
	c := &cobra.Command{
		Use:   "check --config FILE [flags]",
		Short: "Validate a config file (with the same flags as run) and exit",
		Long: `Validate a config file as "podrouter run" would, with the same overriding
flags, and exit: 0 when it is valid, 1 with every offending field named by
its path otherwise. Nothing on the host is touched; password files are read.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if _, err := f.load(c); err != nil {
				return err
			}
			if o.json() {
				return printJSON(c.OutOrStdout(), struct {
					OK bool `json:"ok"`
				}{true})
			}
			_, err := fmt.Fprintln(c.OutOrStdout(), "config ok")
			return err
		},
	}
	f.register(c)
	o.register(c, "text")
	return c
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(c.Level)) // validated already
	opts := &slog.HandlerOptions{Level: lv}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
