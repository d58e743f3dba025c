package config

import (
	"net/netip"
	"slices"
	"time"

	"github.com/podrouter/podrouter/datapath"
	"github.com/podrouter/podrouter/routes"
)

// Defaults. The kernel-route and datapath ones are the actuators' own
// (routes, datapath): one declaration each.
const (
	DefaultListenPort   = 179
	DefaultHoldTime     = 9 * time.Second
	DefaultConnectRetry = 5 * time.Second
	DefaultRestartTime  = 120 * time.Second
	DefaultStartupHold  = 30 * time.Second
	DefaultMaxPfxWarn   = 75
	DefaultMaxPfxWait   = 60 * time.Second
	DefaultProtocol     = routes.DefaultProtocol
	DefaultTable        = routes.DefaultTable
	DefaultMetric       = routes.DefaultMetric
	DefaultResync       = 30 * time.Second
	DefaultAPIAddress   = "127.0.0.1:50051"
	DefaultSocket       = "/run/podrouter/podrouter.sock"
	DefaultPinDir       = datapath.DefaultPinDir
	DefaultPrepend      = 3
	DefaultBFDInterval  = 300 * time.Millisecond
	DefaultBFDMult      = 3
	DefaultWithdraw     = 30 * time.Second
	DefaultLogFormat    = "text"
	DefaultLogLevel     = "info"
)

// DefaultMetricsAddr is where /metrics, /healthz and /readyz listen.
var DefaultMetricsAddr = netip.MustParseAddrPort("127.0.0.1:9842")

// ApplyDefaults fills in every unset field. Load calls it after the
// overrides and before Validate.
func (c *Config) ApplyDefaults() {
	if c.Log.Format == "" {
		c.Log.Format = DefaultLogFormat
	}
	if c.Log.Level == "" {
		c.Log.Level = DefaultLogLevel
	}
	if c.BGP.ListenPort == 0 {
		c.BGP.ListenPort = DefaultListenPort
	}
	if c.BGP.StartupHold == 0 {
		c.BGP.StartupHold = DefaultStartupHold
	}
	for i := range c.BGP.Peers {
		c.BGP.Peers[i].applyDefaults()
	}
	if ap := &c.BGP.AutoPeers; ap.Enabled {
		ap.Peer.applyDefaults()
		if ap.DefaultGateways == nil {
			ap.DefaultGateways = ptr(true)
		}
		if len(ap.Interfaces) == 0 {
			ap.Interfaces = slices.Clone(c.Datapath.Uplinks)
		}
	}
	if d := &c.BGP.Drain; d.Mode == "" {
		d.Mode = DrainWithdraw
	}
	if d := &c.BGP.Drain; d.Mode == DrainDeprefer {
		if d.ASPathPrepend == 0 {
			d.ASPathPrepend = DefaultPrepend
		}
		if d.GracefulShutdownCommunity == nil {
			d.GracefulShutdownCommunity = ptr(true)
		}
		if d.WithdrawAfter == 0 {
			d.WithdrawAfter = DefaultWithdraw
		}
	}
	if c.Routes.Protocol == 0 {
		c.Routes.Protocol = DefaultProtocol
	}
	if c.Routes.Table == 0 {
		c.Routes.Table = DefaultTable
	}
	if c.Routes.Metric == 0 {
		c.Routes.Metric = DefaultMetric
	}
	if c.Routes.ResyncInterval == 0 {
		c.Routes.ResyncInterval = DefaultResync
	}
	if !c.Metrics.Address.IsValid() {
		c.Metrics.Address = DefaultMetricsAddr
	}
	if c.LocalAPI.Socket == "" {
		c.LocalAPI.Socket = DefaultSocket
	}
	if c.Datapath.PinDir == "" {
		c.Datapath.PinDir = DefaultPinDir
	}
	if c.Datapath.CTSizeTCP == 0 {
		c.Datapath.CTSizeTCP = datapath.DefaultCTSizeTCP
	}
	if c.Datapath.CTSizeOther == 0 {
		c.Datapath.CTSizeOther = datapath.DefaultCTSizeOther
	}
	if c.Datapath.KernelConntrack == "" {
		c.Datapath.KernelConntrack = KernelConntrackAuto
	}
	if c.Kubernetes.ServiceCIDRs == nil {
		c.Kubernetes.ServiceCIDRs = ptr(true)
	}
	if c.Shutdown.Mode == "" {
		c.Shutdown.Mode = ShutdownGracefulRestart
	}
}

// applyDefaults fills a peer's unset timers and options.
func (p *Peer) applyDefaults() {
	if p.HoldTime == 0 {
		p.HoldTime = DefaultHoldTime
	}
	if p.KeepaliveInterval == 0 {
		p.KeepaliveInterval = p.HoldTime / 3
	}
	if p.ConnectRetry == 0 {
		p.ConnectRetry = DefaultConnectRetry
	}
	if p.GracefulRestart.Enabled == nil {
		p.GracefulRestart.Enabled = ptr(true)
	}
	if p.GracefulRestart.RestartTime == 0 {
		p.GracefulRestart.RestartTime = DefaultRestartTime
	}
	if b := &p.BFD; b.Enabled {
		if b.MinTx == 0 {
			b.MinTx = DefaultBFDInterval
		}
		if b.MinRx == 0 {
			b.MinRx = DefaultBFDInterval
		}
		if b.Multiplier == 0 {
			b.Multiplier = DefaultBFDMult
		}
	}
	if p.MaxPrefix.Limit > 0 {
		if p.MaxPrefix.WarningThresholdPercent == 0 {
			p.MaxPrefix.WarningThresholdPercent = DefaultMaxPfxWarn
		}
		if p.MaxPrefix.RestartAfter == 0 {
			p.MaxPrefix.RestartAfter = DefaultMaxPfxWait
		}
	}
}

// DefaultPeer is a peer with every default applied: the settings of peers
// that come from elsewhere than the file (the Node's podrouter.io/peers
// annotation) when the file lists none to copy.
func DefaultPeer() Peer {
	var p Peer
	p.applyDefaults()
	return p
}

func ptr[T any](v T) *T { return &v }
