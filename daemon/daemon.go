package daemon

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/podrouter/podrouter/agent"
	"github.com/podrouter/podrouter/bgp"
	"github.com/podrouter/podrouter/config"
	"github.com/podrouter/podrouter/k8s"
	"github.com/podrouter/podrouter/routes"
)

// Options are the daemon's inputs that are not configuration.
type Options struct {
	// Log receives every log line (nil: discarded).
	Log *slog.Logger
	// Version is reported in logs and podrouter_build_info.
	Version string
}

// errDrainRequested is the cause of the run context's end when `podrouter
// drain` asked for it over the local API.
var errDrainRequested = errors.New("drain requested")

// Run runs the daemon until ctx ends (SIGTERM: the caller's signal
// context) or `podrouter drain` asks it to, then shuts down: for a
// graceful restart it leaves sessions, routes and pins in place; for a
// drain it withdraws, closes the sessions and removes what it installed
// (shutdown.go). cfg must have come from config.Load (defaults applied,
// validated).
func Run(ctx context.Context, cfg *config.Config, opts Options) error {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("node", cfg.Node.Name)

	// Kubernetes mode: the Node says which pod CIDRs are ours and may
	// override the peering; read it before building the speaker.
	var kube *kubeMode
	node := agent.NodeState{Name: cfg.Node.Name, PodCIDRs: cfg.PodCIDRs}
	if cfg.Kubernetes.Enabled {
		var err error
		if kube, err = startKubernetes(ctx, kubeConfig(cfg), log.With("subsys", "k8s")); err != nil {
			return err
		}
		node = kube.Snapshot().State
	}
	installer, err := routes.New(routes.Config{
		Protocol: cfg.Routes.Protocol, Table: cfg.Routes.Table, Metric: cfg.Routes.Metric,
	}, log.With("subsys", "routes"))
	if err != nil {
		return err
	}
	peers := newPeering(log.With("subsys", "bgp"), cfg, speakerConfig(cfg), installer)
	if kube != nil {
		kube.InitPeering(peers)
	}
	peers.Discover(ctx)
	sc := peers.Desired()
	speaker, err := bgp.New(sc, log.With("subsys", "bgp"))
	if err != nil {
		return err
	}
	fp, err := newFastPath(cfg.Datapath, node.PodCIDRs, log.With("subsys", "datapath"))
	if err != nil {
		return err
	}
	ag, err := agent.New(agent.Config{
		Resync: cfg.Routes.ResyncInterval, StartupHold: cfg.BGP.StartupHold,
	}, log.With("subsys", "agent"), speaker, installer, fp.agentDatapath())
	if err != nil {
		return err
	}
	var cidrs *k8s.ServiceCIDRs
	if kube != nil && *cfg.Kubernetes.ServiceCIDRs {
		if cidrs, err = kube.adapter.ServiceCIDRs(); err != nil {
			return err
		}
	}
	svc := newServices(cfg, fp.dp, cidrs, log.With("subsys", "services"))
	d := &daemon{cfg: cfg, speaker: speaker, agent: ag, fastPath: fp, services: svc}

	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	api, err := newLocalAPI(cfg.LocalAPI.Socket, log.With("subsys", "localapi"), d, func() { cancelRun(errDrainRequested) })
	if err != nil {
		return err
	}
	defer api.Close() // last: the socket going away tells `podrouter drain` we are done
	if err := speaker.Start(runCtx, ag); err != nil {
		return err
	}
	peers.Attach(speaker, ag)
	log.Info("podrouter started", "version", opts.Version, "asn", sc.ASN, "router_id", sc.RouterID,
		"pod_cidrs", node.PodCIDRs, "peers", len(sc.Peers), "grpc_api", cfg.BGP.API.Address, "socket", cfg.LocalAPI.Socket,
		"datapath", cfg.Datapath.Enabled)
	ag.SetNodeState(node)

	observe, err := startObservability(cfg, opts.Version, log.With("subsys", "metrics"), d, installer, fp.dp)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(runCtx)
	g.Go(func() error { return observe(gctx) })
	g.Go(func() error { return ag.Run(gctx) })
	g.Go(func() error { return installer.Run(gctx, ag) })
	g.Go(func() error { return api.Serve(gctx) })
	g.Go(func() error { return fp.run(gctx) })
	g.Go(func() error { return svc.run(gctx) })
	g.Go(func() error { return peers.Run(gctx, cfg.Routes.ResyncInterval) })
	if kube != nil {
		run := kube.Runner(ag, d, peers)
		g.Go(func() error { return run(gctx) })
		g.Go(func() error { return kube.runUninstallWatch(gctx) })
	}
	err = g.Wait()

	mode := shutdownRestart
	if cfg.Shutdown.Mode == config.ShutdownDrain || errors.Is(context.Cause(runCtx), errDrainRequested) {
		mode = shutdownDrain
	}
	p := parts{speaker: speaker, fastPath: fp, routes: installer, api: api}
	if kube != nil {
		p.cni = kube
		if gone, why := kube.uninstalling(); gone {
			log.Info("podrouter is being uninstalled: removing its routes, fast path, pins and conflist", "why", why)
			mode = shutdownUninstall
		}
	}
	shutdown(mode, log, cfg.BGP.Drain, p)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// daemon is the running daemon's parts that status and health read.
type daemon struct {
	cfg      *config.Config
	speaker  *bgp.Speaker
	agent    *agent.Agent
	fastPath *fastPath
	services *services
}

// speakerConfig translates the file's BGP section (the explicit peers;
// peering adds the discovered and the Node's).
func speakerConfig(c *config.Config) bgp.Config {
	sc := bgp.Config{
		RouterID:        c.Node.RouterID, // Kubernetes mode may leave it to the Node
		ASN:             c.BGP.ASN,
		ListenPort:      c.BGP.ListenPort,
		ListenAddresses: c.BGP.ListenAddresses,
		APIAddress:      c.BGP.API.Address,
		LogLevel:        slog.LevelWarn,
	}
	if c.Log.Level == "debug" {
		sc.LogLevel = slog.LevelDebug
	}
	for _, p := range c.BGP.Peers {
		sc.Peers = append(sc.Peers, peerConfig(p))
	}
	if d := c.BGP.Drain; d.Mode == config.DrainDeprefer {
		sc.Drain = bgp.DrainConfig{
			Mode: bgp.DrainDeprefer, ASPathPrepend: d.ASPathPrepend, MED: d.MED,
			GracefulShutdown: *d.GracefulShutdownCommunity, WithdrawAfter: d.WithdrawAfter,
		}
	}
	return sc
}

// peerConfig converts one validated config peer (its password already
// read by config.Load).
func peerConfig(p config.Peer) bgp.PeerConfig {
	pc := bgp.PeerConfig{
		Address:           p.Address.Unmap(),
		ASN:               p.ASN,
		LocalAddress:      p.LocalAddress,
		HoldTime:          p.HoldTime,
		KeepaliveInterval: p.KeepaliveInterval,
		ConnectRetry:      p.ConnectRetry,
		EBGPMultihopTTL:   p.EBGPMultihopTTL,
		TTLMin:            p.TTLMin,
		Password:          p.Password(),
		GracefulRestart:   p.GracefulRestart.Enabled == nil || *p.GracefulRestart.Enabled,
		RestartTime:       p.GracefulRestart.RestartTime,
		LongLivedStale:    p.GracefulRestart.LongLivedStaleTime,
		MaxPrefix:         p.MaxPrefix.Limit,
		MaxPrefixWarnPct:  p.MaxPrefix.WarningThresholdPercent,
		MaxPrefixRestart:  p.MaxPrefix.RestartAfter,
	}
	if b := p.BFD; b.Enabled {
		pc.BFD = bgp.BFDConfig{Enabled: true, MinTx: b.MinTx, MinRx: b.MinRx,
			Multiplier: uint8(b.Multiplier)} // validated 1-255
	}
	return pc
}

// kubeConfig maps the config file's kubernetes section onto k8s.Config.
func kubeConfig(c *config.Config) k8s.Config {
	k := c.Kubernetes
	return k8s.Config{
		Kubeconfig: k.Kubeconfig, NodeName: c.Node.Name, Namespace: k.Namespace,
		PasswordSecret: k.PasswordSecret, PasswordKey: k.PasswordKey, DrainTaint: k.DrainTaint,
		ASNBase: k.ASNBase, PeerASNBase: k.PeerASNBase, DrainWithdrawAfter: c.BGP.Drain.Delay(),
		CNIConfPath: k.CNIConfPath, CNIDataDir: k.CNIDataDir, MTU: k.MTU,
		Uplinks: c.Datapath.Uplinks, StatusInterval: k.StatusInterval, Resync: k.Resync,
		DaemonSet: k.DaemonSet,
	}
}

// snapshotTimeout bounds building one health snapshot (the peers are read
// from GoBGP).
const snapshotTimeout = 5 * time.Second
