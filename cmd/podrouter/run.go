package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/podrouter/podrouter/agent"
	"github.com/podrouter/podrouter/bgp"
	"github.com/podrouter/podrouter/config"
	"github.com/podrouter/podrouter/k8s"
	"github.com/podrouter/podrouter/routes"
)

// loadConfig reads the file named by --config with the flags as
// overrides: decode, overrides, defaults, then validation, once. Every
// error names the field.
func loadConfig(args []string, name string) (*config.Config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	path := fs.String("config", "", "config file (YAML)")
	var o config.Overrides
	fs.StringVar(&o.NodeName, "node-name", "", "override node.name")
	routerID := fs.String("router-id", "", "override node.routerID")
	fs.StringVar(&o.LogLevel, "log-level", "", "override log.level (debug, info, warn, error)")
	fs.StringVar(&o.LogFormat, "log-format", "", "override log.format (text, json)")
	fs.StringVar(&o.APIAddress, "api-address", "", "override bgp.api.address (loopback ip:port or unix:///path)")
	fs.StringVar(&o.Socket, "socket", "", "override localAPI.socket")
	fs.StringVar(&o.ShutdownMode, "shutdown-mode", "", "override shutdown.mode (graceful-restart, drain)")
	if err := fs.Parse(args); err != nil {
		return nil, usageError{err.Error()}
	}
	if *path == "" {
		return nil, usageError{"--config is required"}
	}
	if *routerID != "" {
		a, err := netip.ParseAddr(*routerID)
		if err != nil {
			return nil, usageError{fmt.Sprintf("--router-id %q: not an IP address", *routerID)}
		}
		o.RouterID = a
	}
	return config.Load(*path, o)
}

func cmdCheck(args []string) error {
	if _, err := loadConfig(args, "check"); err != nil {
		return err
	}
	fmt.Println("config ok")
	return nil
}

func newLogger(c config.Log) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(c.Level)) // validated already
	opts := &slog.HandlerOptions{Level: lv}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// speakerConfig translates the file's BGP section.
func speakerConfig(c *config.Config) (bgp.Config, error) {
	sc := bgp.Config{
		RouterID:   c.Node.RouterID, // Kubernetes mode may leave it to the Node
		ASN:        c.BGP.ASN,
		ListenPort: c.BGP.ListenPort,
		APIAddress: c.BGP.API.Address,
		LogLevel:   slog.LevelWarn,
	}
	if c.Log.Level == "debug" {
		sc.LogLevel = slog.LevelDebug
	}
	sc.ListenAddresses = c.BGP.ListenAddresses
	for i, p := range c.BGP.Peers {
		pc, err := peerConfig(p, fmt.Sprintf("bgp.peers[%d]", i))
		if err != nil {
			return sc, err
		}
		sc.Peers = append(sc.Peers, pc)
	}
	if d := c.BGP.Drain; d.Mode == config.DrainDeprefer {
		sc.Drain = bgp.DrainConfig{
			Mode: bgp.DrainDeprefer, ASPathPrepend: d.ASPathPrepend, MED: d.MED,
			GracefulShutdown: *d.GracefulShutdownCommunity, WithdrawAfter: d.WithdrawAfter,
		}
	}
	return sc, nil
}

func cmdRun(ctx context.Context, args []string) error {
	cfg, err := loadConfig(args, "run")
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log).With("node", cfg.Node.Name)
	var kube *kubeMode
	if cfg.Kubernetes.Enabled {
		// The Node says which pod CIDRs are ours (they cannot change once
		// set) and may override the peering; read it before building
		// anything that depends on them.
		kube, err = startKubernetes(ctx, kubeConfig(cfg), log.With("subsys", "k8s"))
		if err != nil {
			return err
		}
		cfg.PodCIDRs = kube.Snapshot().State.PodCIDRs
	}
	pods := cfg.PodCIDRs
	base, err := speakerConfig(cfg)
	if err != nil {
		return err
	}
	installer, err := routes.New(routes.Config{
		Protocol: cfg.Routes.Protocol, Table: cfg.Routes.Table, Metric: cfg.Routes.Metric,
	}, log.With("subsys", "routes"))
	if err != nil {
		return err
	}
	peers, err := newPeering(log.With("subsys", "bgp"), cfg, base, installer)
	if err != nil {
		return err
	}
	if kube != nil {
		kube.InitPeering(peers)
	}
	peers.Discover(ctx)
	sc := peers.Desired()
	speaker, err := bgp.New(sc, log.With("subsys", "bgp"))
	if err != nil {
		return err
	}
	fp, err := newFastPath(cfg, log.With("subsys", "datapath"))
	if err != nil {
		return err
	}
	ag, err := agent.New(agent.Config{
		Resync: cfg.Routes.ResyncInterval, StartupHold: cfg.BGP.StartupHold,
	}, log.With("subsys", "agent"), speaker, routeAdapter{installer}, fp.agentDatapath())
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)

	api, err := newLocalAPI(cfg.LocalAPI.Socket, log.With("subsys", "localapi"), &daemon{
		cfg: cfg, speaker: speaker, agent: ag, fastPath: fp, drain: func() { cancelRun(errDrainRequested) },
	})
	if err != nil {
		return err
	}
	defer api.Close() // last: the socket going away tells `podrouter drain` we are done
	if err := speaker.Start(runCtx, ag); err != nil {
		return err
	}
	peers.Attach(speaker, ag)
	log.Info("podrouter started", "version", version, "asn", sc.ASN, "router_id", sc.RouterID,
		"pod_cidrs", pods, "peers", len(sc.Peers), "grpc_api", cfg.BGP.API.Address, "socket", cfg.LocalAPI.Socket,
		"datapath", cfg.Datapath.Enabled)
	if kube != nil {
		ag.SetNodeState(kube.Snapshot().State)
	} else {
		ag.SetNodeState(agent.NodeState{Name: cfg.Node.Name, PodCIDRs: pods})
	}

	observe, err := startObservability(runCtx, cfg, log.With("subsys", "metrics"), speaker, ag, installer, fp.dp)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(runCtx)
	g.Go(func() error { return observe(gctx) })
	g.Go(func() error { return ag.Run(gctx) })
	g.Go(func() error { return installer.Run(gctx, ag) })
	g.Go(func() error { return api.Serve(gctx) })
	g.Go(func() error { return fp.run(gctx, log.With("subsys", "datapath")) })
	g.Go(func() error { return peers.Run(gctx, cfg.Routes.ResyncInterval) })
	if kube != nil {
		kubeRun := kube.Runner(ag, speaker, fp, peers)
		g.Go(func() error { return kubeRun(gctx) })
	}
	err = g.Wait()

	drain := cfg.Shutdown.Mode == config.ShutdownDrain || errors.Is(context.Cause(runCtx), errDrainRequested)
	if drain {
		log.Info("draining: withdrawing pod CIDRs and closing sessions", "mode", cfg.BGP.Drain.Mode)
		// deprefer mode: the pod CIDRs stay advertised, depreferred, for
		// withdrawAfter (terminationGracePeriodSeconds must cover it).
		dctx, cancel := context.WithTimeout(context.Background(), cfg.BGP.Drain.Delay()+5*time.Second)
		defer cancel()
		if derr := speaker.DrainAndWait(dctx); derr != nil {
			log.Error("withdraw pod cidrs", "err", derr)
		}
		// Let the UPDATEs with the withdrawals leave before the NOTIFICATION.
		time.Sleep(200 * time.Millisecond)
		speaker.Close()
		// The fast path goes before the routes: pod traffic falls back to
		// the kernel path, which still has the default route.
		fp.unpin(log)
		if rerr := installer.RemoveAll(dctx); rerr != nil {
			log.Error("remove default routes", "err", rerr)
		}
		if _, berr := installer.SetBlackholes(dctx, nil); berr != nil {
			log.Error("remove pod cidr blackholes", "err", berr)
		}
		log.Info("drained; exiting")
	} else {
		// Graceful restart: no NOTIFICATION, no route removal, pins and
		// tcx links stay. The ToR keeps our routes as stale, and the kernel
		// and the fast path keep forwarding until we are back.
		log.Info("exiting for restart; sessions, routes and datapath pins left for graceful restart")
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

var errDrainRequested = errors.New("drain requested")

// kubeConfig maps the config file's kubernetes section onto k8s.Config.
func kubeConfig(c *config.Config) k8s.Config {
	k := c.Kubernetes
	return k8s.Config{
		Kubeconfig: k.Kubeconfig, NodeName: c.Node.Name, Namespace: k.Namespace,
		PasswordSecret: k.PasswordSecret, PasswordKey: k.PasswordKey, DrainTaint: k.DrainTaint,
		ASNBase: k.ASNBase, PeerASNBase: k.PeerASNBase, DrainWithdrawAfter: c.BGP.Drain.Delay(),
		CNIConfPath: k.CNIConfPath, CNIDataDir: k.CNIDataDir, MTU: k.MTU,
		Uplinks: c.Datapath.Uplinks, StatusInterval: k.StatusInterval, Resync: k.Resync,
	}
}

// routeAdapter turns routes' types into the agent's.
type routeAdapter struct{ i *routes.Installer }

func (r routeAdapter) SetDefault(ctx context.Context, fam agent.Family, gws []netip.Addr) (agent.DefaultResult, error) {
	res, err := r.i.SetDefault(ctx, routes.Family(fam), gws)
	out := agent.DefaultResult{ForeignPresent: res.ForeignPresent, ForeignBlocking: res.ForeignBlocking, Changed: res.Changed}
	for _, nh := range res.Installed {
		out.Installed = append(out.Installed, nh.Gateway)
		out.Links = append(out.Links, nh.Link)
	}
	for _, s := range res.Skipped {
		out.Skipped = append(out.Skipped, s.String())
	}
	return out, err
}

func (r routeAdapter) SetBlackholes(ctx context.Context, ps []netip.Prefix) (bool, error) {
	return r.i.SetBlackholes(ctx, ps)
}

func (r routeAdapter) Current(ctx context.Context, fam agent.Family) ([]agent.NextHop, error) {
	nhs, err := r.i.Current(ctx, routes.Family(fam))
	var out []agent.NextHop
	for _, nh := range nhs {
		out = append(out, agent.NextHop{Gateway: nh.Gateway, Link: nh.Link})
	}
	return out, err
}
