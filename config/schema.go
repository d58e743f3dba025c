package config

import (
	"net/netip"
	"time"
)

// Config is the whole daemon configuration, in typed values: addresses
// and prefixes are net/netip values, durations time.Duration. Load fills
// it from a file in one pass (decode, overrides, defaults, validation).
type Config struct {
	Node     Node           `yaml:"node"`
	PodCIDRs []netip.Prefix `yaml:"podCIDRs"`
	Log      Log            `yaml:"log"`
	BGP      BGP            `yaml:"bgp"`
	Routes   Routes         `yaml:"routes"`
	LocalAPI LocalAPI       `yaml:"localAPI"`
	Metrics  Metrics        `yaml:"metrics"`
	Datapath Datapath       `yaml:"datapath"`
	Shutdown ShutdownConfig `yaml:"shutdown"`
	// Kubernetes mode: the Node is the source of truth (see k8s/doc.go).
	Kubernetes Kubernetes `yaml:"kubernetes"`
}

// Kubernetes configures Kubernetes mode: pod CIDRs, drain and per-node
// peering come from this node's Node object (named node.name), the BGP
// password from a Secret, and podrouter writes the node's CNI config.
type Kubernetes struct {
	Enabled        bool          `yaml:"enabled"`
	Kubeconfig     string        `yaml:"kubeconfig"`     // "": in-cluster service account
	Namespace      string        `yaml:"namespace"`      // podrouter's namespace (the password Secret's)
	PasswordSecret string        `yaml:"passwordSecret"` // "": no password from Kubernetes
	PasswordKey    string        `yaml:"passwordKey"`    // default "password"
	DrainTaint     string        `yaml:"drainTaint"`     // "key" or "key=value": also drains
	ASNBase        uint32        `yaml:"asnBase"`        // podrouter.io/rack label -> ASN = asnBase + rack
	PeerASNBase    uint32        `yaml:"peerASNBase"`    // podrouter.io/rack label -> bgp.autoPeers ASN = peerASNBase + rack
	CNIConfPath    string        `yaml:"cniConfPath"`    // "": do not write a CNI config
	CNIDataDir     string        `yaml:"cniDataDir"`     // host-local IPAM state dir
	MTU            int           `yaml:"mtu"`            // 0: the smallest uplink MTU
	StatusInterval time.Duration `yaml:"statusInterval"`
	Resync         time.Duration `yaml:"resync"`
	// DaemonSet names the DaemonSet that runs podrouter, in Namespace. Set,
	// a SIGTERM while that DaemonSet or the namespace is being deleted
	// (uninstall) removes everything podrouter put on the node instead of
	// leaving it for a restarted successor. "": SIGTERM always restarts.
	DaemonSet string `yaml:"daemonSet"`
	// ServiceCIDRs: learn the cluster's Service CIDRs from its
	// networking.k8s.io/v1 ServiceCIDR objects and hand traffic to them to
	// the kernel stack, where kube-proxy translates it, in addition to
	// datapath.passCIDRs; changes apply live. Default true.
	ServiceCIDRs *bool `yaml:"serviceCIDRs"`
	// KubeProxyModeURL is where kube-proxy reports its mode (its metrics
	// port's /proxyMode). "": http://127.0.0.1:10249/proxyMode (kube-proxy's
	// default, in the node's network namespace); "off": do not ask.
	KubeProxyModeURL string `yaml:"kubeProxyModeURL"`
}

// KubeProxyProbeOff turns the kube-proxy mode probe off.
const KubeProxyProbeOff = "off"

// Node identifies this node.
type Node struct {
	// Name is the node's name: the Kubernetes Node's (a DNS subdomain, at
	// most 253 characters), also in static mode, where it labels logs and
	// status only.
	Name string `yaml:"name"`
	// RouterID is the BGP router ID (IPv4). In Kubernetes mode it may be
	// left out: the Node's annotation or InternalIP gives it.
	RouterID netip.Addr `yaml:"routerID"`
}

// Log selects the log format and level.
type Log struct {
	Format string `yaml:"format"` // text | json
	Level  string `yaml:"level"`  // debug | info | warn | error
}

// BGP configures the embedded speaker.
type BGP struct {
	ASN             uint32       `yaml:"asn"`
	ListenPort      int32        `yaml:"listenPort"` // 179 by default; -1: never listen, only connect out
	ListenAddresses []netip.Addr `yaml:"listenAddresses"`
	API             API          `yaml:"api"`
	Peers           []Peer       `yaml:"peers"`
	// StartupHold is how long after start podrouter keeps a default route it
	// finds in the kernel (left by its previous instance) while sessions
	// come back, instead of removing it because no peer offers one yet.
	// It also covers a restart of the BGP server for a new local ASN.
	StartupHold time.Duration `yaml:"startupHold"`
	// AutoPeers adds the neighbours found in the node's own network
	// configuration to Peers.
	AutoPeers AutoPeers `yaml:"autoPeers"`
	// Drain is how a drain (cordon, `podrouter drain`, shutdown.mode:
	// drain) takes the pod CIDRs away.
	Drain Drain `yaml:"drain"`
}

// AutoPeers discovers BGP neighbours from the node itself, so one
// cluster-wide config fits every rack: the other end of each uplink's
// point-to-point subnet (IPv4 /31 or /30, IPv6 /127, or an address
// configured with a peer) and, with defaultGateways, the gateways of the
// default routes podrouter did not install. The peer settings (asn, timers,
// password, GTSM, …) are those of a bgp.peers entry, given inline; address
// and localAddress are discovered. Explicit bgp.peers win for the same
// address. Re-discovered every routes.resyncInterval (every second while
// none is found).
type AutoPeers struct {
	Enabled bool `yaml:"enabled"`
	// Interfaces to discover on; default: datapath.uplinks, and every
	// interface when that is empty too.
	Interfaces      []string `yaml:"interfaces"`
	DefaultGateways *bool    `yaml:"defaultGateways"` // default true
	Peer            `yaml:",inline"`
}

// Drain modes.
const (
	DrainWithdraw = "withdraw"
	DrainDeprefer = "deprefer"
)

// Drain configures how the pod CIDRs leave the fabric.
type Drain struct {
	// Mode is "withdraw" (default: at once) or "deprefer": re-advertise them
	// less preferred (asPathPrepend, med, the RFC 8326 GRACEFUL_SHUTDOWN
	// community) so the fabric moves traffic away while this path still
	// works, then withdraw withdrawAfter later.
	Mode                      string        `yaml:"mode"`
	ASPathPrepend             uint8         `yaml:"asPathPrepend"`             // default 3 (deprefer)
	MED                       uint32        `yaml:"med"`                       // 0: not sent
	GracefulShutdownCommunity *bool         `yaml:"gracefulShutdownCommunity"` // default true
	WithdrawAfter             time.Duration `yaml:"withdrawAfter"`             // default 30s (deprefer)
}

// Delay is the deprefer phase of a drain: withdrawAfter in deprefer mode,
// 0 when the pod CIDRs are withdrawn at once.
func (d Drain) Delay() time.Duration {
	if d.Mode == DrainDeprefer {
		return d.WithdrawAfter
	}
	return 0
}

// API is the GoBGP gRPC endpoint used by the stock gobgp CLI.
type API struct {
	// Address is "host:port" with a loopback host, or "unix:///path".
	// Empty disables the gRPC API.
	Address string `yaml:"address"`
}

// Peer is one BGP neighbour (a ToR). An IPv4 address gives an IPv4-unicast
// session, an IPv6 address an IPv6-unicast session.
type Peer struct {
	Address           netip.Addr      `yaml:"address"`
	ASN               uint32          `yaml:"asn"`
	LocalAddress      netip.Addr      `yaml:"localAddress"`
	HoldTime          time.Duration   `yaml:"holdTime"`
	KeepaliveInterval time.Duration   `yaml:"keepaliveInterval"`
	ConnectRetry      time.Duration   `yaml:"connectRetry"`
	EBGPMultihopTTL   uint8           `yaml:"ebgpMultihopTTL"`
	TTLMin            uint8           `yaml:"ttlMin"` // GTSM (RFC 5082): 255 for directly connected peers
	PasswordFile      string          `yaml:"passwordFile"`
	GracefulRestart   GracefulRestart `yaml:"gracefulRestart"`
	MaxPrefix         MaxPrefix       `yaml:"maxPrefix"`
	BFD               BFD             `yaml:"bfd"`

	// password is passwordFile's content, read (bounded) by Load.
	password string
}

// Password is the TCP-MD5 password read from PasswordFile ("" without one).
func (p Peer) Password() string { return p.password }

// BFD configures single-hop BFD (RFC 5880/5881) for a peer: a path failure
// that leaves the link up is detected in about multiplier × minRx (the
// peer's minTx when larger) instead of the BGP hold time, and the session is
// reset. The ToR must run BFD for the session too.
type BFD struct {
	Enabled    bool          `yaml:"enabled"`
	MinTx      time.Duration `yaml:"minTx"`      // desired minimum transmit interval; default 300ms
	MinRx      time.Duration `yaml:"minRx"`      // required minimum receive interval; default 300ms
	Multiplier int           `yaml:"multiplier"` // detection multiplier; default 3
}

// GracefulRestart configures RFC 4724 graceful restart for a peer, and
// optionally RFC 9494 long-lived graceful restart on top of it.
type GracefulRestart struct {
	Enabled     *bool         `yaml:"enabled"` // default true
	RestartTime time.Duration `yaml:"restartTime"`
	// LongLivedStaleTime > 0 turns on LLGR: when the restart time has run
	// out, the peer keeps our routes (and we keep its default) this much
	// longer as LLGR_STALE, least preferred; 0: off.
	LongLivedStaleTime time.Duration `yaml:"longLivedStaleTime"`
}

// MaxPrefix bounds how many prefixes a peer may send before its session is
// torn down; podrouter re-enables the peer after RestartAfter.
type MaxPrefix struct {
	Limit                   uint32        `yaml:"limit"` // 0: no limit
	WarningThresholdPercent uint8         `yaml:"warningThresholdPercent"`
	RestartAfter            time.Duration `yaml:"restartAfter"`
}

// Routes configures the kernel default route podrouter installs.
type Routes struct {
	Protocol       int           `yaml:"protocol"`
	Table          int           `yaml:"table"`
	Metric         int           `yaml:"metric"`
	ResyncInterval time.Duration `yaml:"resyncInterval"`
}

// LocalAPI is the unix socket serving podrouter's own CLI.
type LocalAPI struct {
	Socket string `yaml:"socket"`
}

// Metrics is the Prometheus/health listener.
type Metrics struct {
	Address netip.AddrPort `yaml:"address"` // ip:port; default 127.0.0.1:9842
	// AllowNonLoopback must be set to listen on a routable address (for a
	// Prometheus outside the node): /metrics and /readyz reveal topology.
	AllowNonLoopback bool `yaml:"allowNonLoopback"`
}

// Datapath configures the eBPF fast path.
type Datapath struct {
	Enabled bool `yaml:"enabled"`
	// PinDir is the directory for pinned maps and links. It must be on a
	// bpffs mounted in the host's mount namespace (podrouter does not
	// mount one: a mount made by the daemon would live in its own mount
	// namespace and vanish with it, and pins would not survive a restart).
	// A pin dir that is not on bpffs makes the fast path unavailable; the
	// daemon then forwards on the kernel path and says why.
	PinDir string `yaml:"pinDir"`
	// Uplinks are the interfaces towards the ToRs (from-network is
	// attached there); required when enabled.
	Uplinks []string `yaml:"uplinks"`
	// CTSizeTCP and CTSizeOther are the conntrack map sizes (default
	// datapath.DefaultCTSizeTCP and DefaultCTSizeOther).
	CTSizeTCP   int `yaml:"ctSizeTCP"`
	CTSizeOther int `yaml:"ctSizeOther"`
	// PassCIDRs are destinations always handed to the kernel stack (e.g.
	// the Kubernetes service CIDR, which kube-proxy translates).
	PassCIDRs []netip.Prefix `yaml:"passCIDRs"`
	// KernelConntrack selects the new flows the fast path hands to the
	// kernel stack after asking nf_conntrack: "nat" (those netfilter
	// translates: kube-proxy's iptables and nftables modes), "any" (every
	// flow nf_conntrack knows: proxies that translate without nf_nat, such
	// as IPVS), or "auto" (default: nat, any while kube-proxy is found in
	// a mode other than iptables or nftables).
	KernelConntrack string `yaml:"kernelConntrack"`
}

// Kernel conntrack modes (datapath.kernelConntrack).
const (
	KernelConntrackAuto = "auto"
	KernelConntrackNAT  = "nat"
	KernelConntrackAny  = "any"
)

// ShutdownConfig selects what SIGTERM does.
type ShutdownConfig struct {
	// Mode is "graceful-restart" (default: exit without a NOTIFICATION, the
	// ToR keeps our routes as stale, the kernel keeps the default route) or
	// "drain" (withdraw, close sessions, remove the default route).
	Mode string `yaml:"mode"`
}

// Shutdown modes.
const (
	ShutdownGracefulRestart = "graceful-restart"
	ShutdownDrain           = "drain"
)

// Overrides are values given on the command line. Load applies the set
// ones over the file's, before defaults and validation, so a file that
// leaves node.name to --node-name (the DaemonSet's case) is valid.
type Overrides struct {
	NodeName     string
	RouterID     netip.Addr
	LogLevel     string
	LogFormat    string
	APIAddress   string
	Socket       string
	ShutdownMode string
}

func (o Overrides) apply(c *Config) {
	for _, s := range []struct {
		v   string
		dst *string
	}{
		{o.NodeName, &c.Node.Name}, {o.LogLevel, &c.Log.Level}, {o.LogFormat, &c.Log.Format},
		{o.APIAddress, &c.BGP.API.Address}, {o.Socket, &c.LocalAPI.Socket}, {o.ShutdownMode, &c.Shutdown.Mode},
	} {
		if s.v != "" {
			*s.dst = s.v
		}
	}
	if o.RouterID.IsValid() {
		c.Node.RouterID = o.RouterID
	}
}
