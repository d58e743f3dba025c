// Package config owns podrouter's configuration file: its schema, strict
// parsing (unknown fields are errors), defaults and validation. Every
// validation error names the offending field by its YAML path.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole daemon configuration.
type Config struct {
	Node     Node           `yaml:"node"`
	PodCIDRs []string       `yaml:"podCIDRs"`
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
	Enabled        bool     `yaml:"enabled"`
	Kubeconfig     string   `yaml:"kubeconfig"`     // "": in-cluster service account
	Namespace      string   `yaml:"namespace"`      // podrouter's namespace (the password Secret's)
	PasswordSecret string   `yaml:"passwordSecret"` // "": no password from Kubernetes
	PasswordKey    string   `yaml:"passwordKey"`    // default "password"
	DrainTaint     string   `yaml:"drainTaint"`     // "key" or "key=value": also drains
	ASNBase        uint32   `yaml:"asnBase"`        // podrouter.io/rack label -> ASN = asnBase + rack
	PeerASNBase    uint32   `yaml:"peerASNBase"`    // podrouter.io/rack label -> bgp.autoPeers ASN = peerASNBase + rack
	CNIConfPath    string   `yaml:"cniConfPath"`    // "": do not write a CNI config
	CNIDataDir     string   `yaml:"cniDataDir"`     // host-local IPAM state dir
	MTU            int      `yaml:"mtu"`            // 0: the smallest uplink MTU
	StatusInterval Duration `yaml:"statusInterval"`
	Resync         Duration `yaml:"resync"`
}

// Node identifies this node.
type Node struct {
	Name     string `yaml:"name"`
	RouterID string `yaml:"routerID"`
}

// Log selects the log format and level.
type Log struct {
	Format string `yaml:"format"` // text | json
	Level  string `yaml:"level"`  // debug | info | warn | error
}

// BGP configures the embedded speaker.
type BGP struct {
	ASN             uint32   `yaml:"asn"`
	ListenPort      int32    `yaml:"listenPort"` // 179 by default; -1: never listen, only connect out
	ListenAddresses []string `yaml:"listenAddresses"`
	API             API      `yaml:"api"`
	Peers           []Peer   `yaml:"peers"`
	// StartupHold is how long after start podrouter keeps a default route it
	// finds in the kernel (left by its previous instance) while sessions
	// come back, instead of removing it because no peer offers one yet.
	// It also covers a restart of the BGP server for a new local ASN.
	StartupHold Duration `yaml:"startupHold"`
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

// Delay is the deprefer phase of a drain: withdrawAfter in deprefer mode,
// 0 when the pod CIDRs are withdrawn at once.
func (d Drain) Delay() time.Duration {
	if d.Mode == DrainDeprefer {
		return d.WithdrawAfter.Duration
	}
	return 0
}

// Drain configures how the pod CIDRs leave the fabric.
type Drain struct {
	// Mode is "withdraw" (default: at once) or "deprefer": re-advertise them
	// less preferred (asPathPrepend, med, the RFC 8326 GRACEFUL_SHUTDOWN
	// community) so the fabric moves traffic away while this path still
	// works, then withdraw withdrawAfter later.
	Mode                      string   `yaml:"mode"`
	ASPathPrepend             uint8    `yaml:"asPathPrepend"`             // default 3 (deprefer)
	MED                       uint32   `yaml:"med"`                       // 0: not sent
	GracefulShutdownCommunity *bool    `yaml:"gracefulShutdownCommunity"` // default true
	WithdrawAfter             Duration `yaml:"withdrawAfter"`             // default 30s (deprefer)
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
	Address           string          `yaml:"address"`
	ASN               uint32          `yaml:"asn"`
	LocalAddress      string          `yaml:"localAddress"`
	HoldTime          Duration        `yaml:"holdTime"`
	KeepaliveInterval Duration        `yaml:"keepaliveInterval"`
	ConnectRetry      Duration        `yaml:"connectRetry"`
	EBGPMultihopTTL   uint8           `yaml:"ebgpMultihopTTL"`
	TTLMin            uint8           `yaml:"ttlMin"` // GTSM (RFC 5082): 255 for directly connected peers
	PasswordFile      string          `yaml:"passwordFile"`
	GracefulRestart   GracefulRestart `yaml:"gracefulRestart"`
	MaxPrefix         MaxPrefix       `yaml:"maxPrefix"`
	BFD               BFD             `yaml:"bfd"`
}

// BFD configures single-hop BFD (RFC 5880/5881) for a peer: a path failure
// that leaves the link up is detected in about multiplier × minRx (the
// peer's minTx when larger) instead of the BGP hold time, and the session is
// reset. The ToR must run BFD for the session too.
type BFD struct {
	Enabled    bool     `yaml:"enabled"`
	MinTx      Duration `yaml:"minTx"`      // desired minimum transmit interval; default 300ms
	MinRx      Duration `yaml:"minRx"`      // required minimum receive interval; default 300ms
	Multiplier int      `yaml:"multiplier"` // detection multiplier; default 3
}

// GracefulRestart configures RFC 4724 graceful restart for a peer.
type GracefulRestart struct {
	Enabled     *bool    `yaml:"enabled"` // default true
	RestartTime Duration `yaml:"restartTime"`
}

// MaxPrefix bounds how many prefixes a peer may send before its session is
// torn down; podrouter re-enables the peer after RestartAfter.
type MaxPrefix struct {
	Limit                   uint32   `yaml:"limit"` // 0: no limit
	WarningThresholdPercent uint8    `yaml:"warningThresholdPercent"`
	RestartAfter            Duration `yaml:"restartAfter"`
}

// Routes configures the kernel default route podrouter installs.
type Routes struct {
	Protocol       int      `yaml:"protocol"`
	Table          int      `yaml:"table"`
	Metric         int      `yaml:"metric"`
	ResyncInterval Duration `yaml:"resyncInterval"`
}

// LocalAPI is the unix socket serving podrouter's own CLI.
type LocalAPI struct {
	Socket string `yaml:"socket"`
}

// Metrics is the Prometheus/health listener.
type Metrics struct {
	Address string `yaml:"address"` // ip:port; default 127.0.0.1:9842
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
	// CTSizeTCP and CTSizeOther are the conntrack map sizes (0: default
	// 262144 and 65536).
	CTSizeTCP   int `yaml:"ctSizeTCP"`
	CTSizeOther int `yaml:"ctSizeOther"`
	// PassCIDRs are destinations always handed to the kernel stack (e.g.
	// the Kubernetes service CIDR, which kube-proxy translates).
	PassCIDRs []string `yaml:"passCIDRs"`
}

// Datapath limits (bpf/lib/maps.h).
const (
	MaxCTSize    = 1 << 24
	MaxPassCIDRs = 256
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

// Duration is a time.Duration written as a Go duration string ("9s").
type Duration struct{ time.Duration }

// UnmarshalYAML accepts a duration string such as "9s".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration like \"9s\", got %q", n.Line, n.Value)
	}
	if v < 0 {
		return fmt.Errorf("line %d: negative duration %q", n.Line, n.Value)
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Defaults.
const (
	DefaultListenPort   = 179
	DefaultHoldTime     = 9 * time.Second
	DefaultKeepalive    = 3 * time.Second
	DefaultConnectRetry = 5 * time.Second
	DefaultRestartTime  = 120 * time.Second
	DefaultStartupHold  = 30 * time.Second
	DefaultMaxPfxWarn   = 75
	DefaultMaxPfxWait   = 60 * time.Second
	DefaultProtocol     = 201
	DefaultTable        = 254
	DefaultMetric       = 20
	DefaultResync       = 30 * time.Second
	DefaultAPIAddress   = "127.0.0.1:50051"
	DefaultSocket       = "/run/podrouter/podrouter.sock"
	DefaultMetricsAddr  = "127.0.0.1:9842"
	DefaultPinDir       = "/sys/fs/bpf/podrouter"
	DefaultPrepend      = 3
	DefaultBFDInterval  = 300 * time.Millisecond
	DefaultBFDMult      = 3
	DefaultWithdraw     = 30 * time.Second
	MaxPrepend          = 10
)

// BFD interval bounds: FRR's bfdd accepts 10ms-60s, and GoBGP carries the
// intervals in microseconds.
const (
	MinBFDInterval = 10 * time.Millisecond
	MaxBFDInterval = 60 * time.Second
	MaxBFDMult     = 255
)

// Load reads, strictly parses, defaults and validates a config file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(b)
}

// Parse strictly parses YAML (unknown fields are errors), applies defaults
// and validates. It does no I/O except checking that password files exist.
func Parse(b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse config: %s", nameFields(b, err))
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// nameFields rewrites the decoder's "line N: ..." messages so that each
// names the field at that line by its path ("bgp.peers[0].holdTime").
func nameFields(b []byte, err error) string {
	var root yaml.Node
	if yaml.Unmarshal(b, &root) != nil {
		return err.Error()
	}
	paths := map[int][]string{}   // line -> paths of the keys on it
	values := map[string]string{} // path -> scalar value
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				paths[k.Line] = append(paths[k.Line], p)
				if v.Kind == yaml.ScalarNode {
					values[p] = v.Value
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
	walk(&root, "")
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		var line int
		if _, scanErr := fmt.Sscanf(m, "line %d:", &line); scanErr != nil || len(paths[line]) == 0 {
			out = append(out, m)
			continue
		}
		cands := paths[line]
		var field string
		rest := m[strings.Index(m, ":")+1:]
		if _, scanErr := fmt.Sscanf(rest, " field %s not found", &field); scanErr == nil {
			for _, p := range cands {
				if p == field || strings.HasSuffix(p, "."+field) {
					out = append(out, fmt.Sprintf("unknown field %q (line %d)", p, line))
					break
				}
			}
			continue
		}
		best := cands[len(cands)-1]
		for _, p := range cands {
			if v, ok := values[p]; ok && v != "" && strings.Contains(m, "\""+v+"\"") || strings.Contains(m, "`"+values[p]+"`") {
				best = p
			}
		}
		out = append(out, best+": "+m)
	}
	return strings.Join(out, "; ")
}

// ApplyDefaults fills in every unset field.
func (c *Config) ApplyDefaults() {
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.BGP.ListenPort == 0 {
		c.BGP.ListenPort = DefaultListenPort
	}
	if c.BGP.StartupHold.Duration == 0 {
		c.BGP.StartupHold.Duration = DefaultStartupHold
	}
	peers := make([]*Peer, 0, len(c.BGP.Peers)+1)
	for i := range c.BGP.Peers {
		peers = append(peers, &c.BGP.Peers[i])
	}
	if ap := &c.BGP.AutoPeers; ap.Enabled {
		peers = append(peers, &ap.Peer)
		if ap.DefaultGateways == nil {
			t := true
			ap.DefaultGateways = &t
		}
		if len(ap.Interfaces) == 0 {
			ap.Interfaces = append([]string(nil), c.Datapath.Uplinks...)
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
			t := true
			d.GracefulShutdownCommunity = &t
		}
		if d.WithdrawAfter.Duration == 0 {
			d.WithdrawAfter.Duration = DefaultWithdraw
		}
	}
	for _, p := range peers {
		if p.HoldTime.Duration == 0 {
			p.HoldTime.Duration = DefaultHoldTime
		}
		if p.KeepaliveInterval.Duration == 0 {
			p.KeepaliveInterval.Duration = p.HoldTime.Duration / 3
		}
		if p.ConnectRetry.Duration == 0 {
			p.ConnectRetry.Duration = DefaultConnectRetry
		}
		if p.GracefulRestart.Enabled == nil {
			t := true
			p.GracefulRestart.Enabled = &t
		}
		if p.GracefulRestart.RestartTime.Duration == 0 {
			p.GracefulRestart.RestartTime.Duration = DefaultRestartTime
		}
		if b := &p.BFD; b.Enabled {
			if b.MinTx.Duration == 0 {
				b.MinTx.Duration = DefaultBFDInterval
			}
			if b.MinRx.Duration == 0 {
				b.MinRx.Duration = DefaultBFDInterval
			}
			if b.Multiplier == 0 {
				b.Multiplier = DefaultBFDMult
			}
		}
		if p.MaxPrefix.Limit > 0 {
			if p.MaxPrefix.WarningThresholdPercent == 0 {
				p.MaxPrefix.WarningThresholdPercent = DefaultMaxPfxWarn
			}
			if p.MaxPrefix.RestartAfter.Duration == 0 {
				p.MaxPrefix.RestartAfter.Duration = DefaultMaxPfxWait
			}
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
	if c.Routes.ResyncInterval.Duration == 0 {
		c.Routes.ResyncInterval.Duration = DefaultResync
	}
	if c.Metrics.Address == "" {
		c.Metrics.Address = DefaultMetricsAddr
	}
	if c.LocalAPI.Socket == "" {
		c.LocalAPI.Socket = DefaultSocket
	}
	if c.Datapath.PinDir == "" {
		c.Datapath.PinDir = DefaultPinDir
	}
	if c.Shutdown.Mode == "" {
		c.Shutdown.Mode = ShutdownGracefulRestart
	}
}

// FieldError is a validation error bound to one field.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, a ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// Validate checks every field and returns all problems joined.
func (c *Config) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if c.Node.Name == "" {
		add(fieldErr("node.name", "required"))
	}
	// In Kubernetes mode the router ID and pod CIDRs may come from the Node.
	k8s := c.Kubernetes.Enabled
	if rid, err := netip.ParseAddr(c.Node.RouterID); (err != nil || !rid.Is4() || rid.IsUnspecified()) && !(k8s && c.Node.RouterID == "") {
		add(fieldErr("node.routerID", "want a non-zero IPv4 address, got %q", c.Node.RouterID))
	}
	add(validateFormat(c.Log))
	if !(k8s && len(c.PodCIDRs) == 0) {
		_, err := c.Prefixes()
		add(err)
	}
	if k8s {
		if c.Kubernetes.MTU < 0 || c.Kubernetes.MTU > 65535 {
			add(fieldErr("kubernetes.mtu", "want 0 (from the uplinks) or 68-65535, got %d", c.Kubernetes.MTU))
		}
		if c.Kubernetes.CNIConfPath != "" && !strings.HasPrefix(c.Kubernetes.CNIConfPath, "/") {
			add(fieldErr("kubernetes.cniConfPath", "want an absolute path, got %q", c.Kubernetes.CNIConfPath))
		}
		if c.Kubernetes.PasswordSecret != "" && c.Kubernetes.Namespace == "" {
			add(fieldErr("kubernetes.namespace", "required with kubernetes.passwordSecret"))
		}
	}
	add(validateASN("bgp.asn", c.BGP.ASN))
	if c.BGP.ListenPort < -1 || c.BGP.ListenPort > 65535 {
		add(fieldErr("bgp.listenPort", "want 1-65535 or -1 (do not listen), got %d", c.BGP.ListenPort))
	}
	for i, a := range c.BGP.ListenAddresses {
		if _, err := netip.ParseAddr(a); err != nil {
			add(fieldErr(fmt.Sprintf("bgp.listenAddresses[%d]", i), "not an IP address: %q", a))
		}
	}
	add(validateAPIAddress(c.BGP.API.Address))
	seen := map[netip.Addr]int{}
	for i := range c.BGP.Peers {
		f := fmt.Sprintf("bgp.peers[%d]", i)
		addr, err := c.BGP.Peers[i].validate(f)
		add(err)
		if addr.IsValid() {
			if j, dup := seen[addr]; dup {
				add(fieldErr(f+".address", "duplicate peer %s (also bgp.peers[%d])", addr, j))
			}
			seen[addr] = i
		}
	}
	if ap := c.BGP.AutoPeers; ap.Enabled {
		const f = "bgp.autoPeers"
		if ap.Address != "" {
			add(fieldErr(f+".address", "discovered, must not be set"))
		}
		if ap.LocalAddress != "" {
			add(fieldErr(f+".localAddress", "discovered, must not be set"))
		}
		t := ap.Peer
		t.Address = "192.0.2.1" // stands in for the discovered ones
		_, err := t.validate(f)
		add(err)
		for i, n := range ap.Interfaces {
			if !validIfName(n) {
				add(fieldErr(fmt.Sprintf("%s.interfaces[%d]", f, i), "not a valid interface name: %q", n))
			}
		}
	}
	switch d := c.BGP.Drain; d.Mode {
	case DrainWithdraw:
	case DrainDeprefer:
		if d.ASPathPrepend > MaxPrepend {
			add(fieldErr("bgp.drain.asPathPrepend", "at most %d, got %d", MaxPrepend, d.ASPathPrepend))
		}
	default:
		add(fieldErr("bgp.drain.mode", "want %q or %q, got %q", DrainWithdraw, DrainDeprefer, d.Mode))
	}
	if c.Routes.Protocol < 5 || c.Routes.Protocol > 255 {
		add(fieldErr("routes.protocol", "want 5-255 (0-4 are the kernel's own), got %d", c.Routes.Protocol))
	}
	if c.Routes.Table < 1 || c.Routes.Table > 0xfffffffe || c.Routes.Table == 255 {
		add(fieldErr("routes.table", "want a routing table id other than local (255), got %d", c.Routes.Table))
	}
	if c.Routes.Metric < 0 {
		add(fieldErr("routes.metric", "must not be negative"))
	}
	if c.LocalAPI.Socket != "" && !strings.HasPrefix(c.LocalAPI.Socket, "/") {
		add(fieldErr("localAPI.socket", "want an absolute path, got %q", c.LocalAPI.Socket))
	}
	if c.Metrics.Address != "" {
		ap, err := netip.ParseAddrPort(c.Metrics.Address)
		switch {
		case err != nil:
			add(fieldErr("metrics.address", "want ip:port, got %q", c.Metrics.Address))
		case !ap.Addr().IsLoopback() && !c.Metrics.AllowNonLoopback:
			add(fieldErr("metrics.address", "%s is not a loopback address; set metrics.allowNonLoopback to listen on it", ap.Addr()))
		}
	}
	add(c.Datapath.validate())
	if c.Shutdown.Mode != ShutdownGracefulRestart && c.Shutdown.Mode != ShutdownDrain {
		add(fieldErr("shutdown.mode", "want %q or %q, got %q", ShutdownGracefulRestart, ShutdownDrain, c.Shutdown.Mode))
	}
	return errors.Join(errs...)
}

func (d Datapath) validate() error {
	var errs []error
	if !strings.HasPrefix(d.PinDir, "/") || filepath.Clean(d.PinDir) == "/" {
		errs = append(errs, fieldErr("datapath.pinDir", "want an absolute directory path other than /, got %q", d.PinDir))
	}
	if d.Enabled && len(d.Uplinks) == 0 {
		errs = append(errs, fieldErr("datapath.uplinks", "required when datapath.enabled (the interfaces towards the ToRs)"))
	}
	seen := map[string]int{}
	for i, u := range d.Uplinks {
		f := fmt.Sprintf("datapath.uplinks[%d]", i)
		if !validIfName(u) {
			errs = append(errs, fieldErr(f, "not a valid interface name: %q", u))
		}
		if j, dup := seen[u]; dup {
			errs = append(errs, fieldErr(f, "duplicate uplink %q (also datapath.uplinks[%d])", u, j))
		}
		seen[u] = i
	}
	for _, s := range []struct {
		f string
		v int
	}{{"datapath.ctSizeTCP", d.CTSizeTCP}, {"datapath.ctSizeOther", d.CTSizeOther}} {
		if s.v < 0 || s.v > MaxCTSize {
			errs = append(errs, fieldErr(s.f, "want 1-%d entries (0: default), got %d", MaxCTSize, s.v))
		}
	}
	if len(d.PassCIDRs) > MaxPassCIDRs {
		errs = append(errs, fieldErr("datapath.passCIDRs", "at most %d prefixes, got %d", MaxPassCIDRs, len(d.PassCIDRs)))
	}
	for i, s := range d.PassCIDRs {
		f := fmt.Sprintf("datapath.passCIDRs[%d]", i)
		p, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			errs = append(errs, fieldErr(f, "invalid CIDR %q", s))
		case p.Masked() != p:
			errs = append(errs, fieldErr(f, "%s has host bits set (did you mean %s?)", p, p.Masked()))
		}
	}
	return errors.Join(errs...)
}

// validIfName reports whether n can be a Linux interface name.
func validIfName(n string) bool {
	return n != "" && len(n) <= 15 && !strings.ContainsAny(n, "/: \t\n") && n != "." && n != ".."
}

// PassPrefixes returns the parsed datapath.passCIDRs of a validated config.
func (d Datapath) PassPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(d.PassCIDRs))
	for _, s := range d.PassCIDRs {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func validateFormat(l Log) error {
	var errs []error
	if l.Format != "text" && l.Format != "json" {
		errs = append(errs, fieldErr("log.format", "want text or json, got %q", l.Format))
	}
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fieldErr("log.level", "want debug, info, warn or error, got %q", l.Level))
	}
	return errors.Join(errs...)
}

func validateASN(field string, asn uint32) error {
	switch asn {
	case 0:
		return fieldErr(field, "ASN 0 is reserved (RFC 7607)")
	case 23456:
		return fieldErr(field, "ASN 23456 is AS_TRANS (RFC 6793), not a real ASN")
	case 65535, 4294967295:
		return fieldErr(field, "ASN %d is reserved (RFC 7300)", asn)
	}
	return nil
}

// validateAPIAddress accepts "", "unix:///abs/path" or a loopback ip:port:
// the gRPC API must never listen on a routable address.
func validateAPIAddress(a string) error {
	const f = "bgp.api.address"
	if a == "" {
		return nil
	}
	if p, ok := strings.CutPrefix(a, "unix://"); ok {
		if !strings.HasPrefix(p, "/") {
			return fieldErr(f, "unix socket path must be absolute, got %q", a)
		}
		return nil
	}
	ap, err := netip.ParseAddrPort(a)
	if err != nil {
		return fieldErr(f, "want loopback ip:port or unix:///path, got %q", a)
	}
	if !ap.Addr().IsLoopback() {
		return fieldErr(f, "%s is not a loopback address; the gRPC API must not be reachable from the network", ap.Addr())
	}
	return nil
}

func (p *Peer) validate(f string) (netip.Addr, error) {
	var errs []error
	addr, err := netip.ParseAddr(p.Address)
	if err != nil || addr.IsUnspecified() || addr.Zone() != "" {
		errs = append(errs, fieldErr(f+".address", "want an IP address, got %q", p.Address))
		addr = netip.Addr{}
	}
	addr = addr.Unmap()
	if err := validateASN(f+".asn", p.ASN); err != nil {
		errs = append(errs, err)
	}
	if p.LocalAddress != "" {
		la, err := netip.ParseAddr(p.LocalAddress)
		switch {
		case err != nil:
			errs = append(errs, fieldErr(f+".localAddress", "want an IP address, got %q", p.LocalAddress))
		case addr.IsValid() && la.Is4() != addr.Is4():
			errs = append(errs, fieldErr(f+".localAddress", "%s is not of the same family as the peer %s", la, addr))
		}
	}
	hold, ka := p.HoldTime.Duration, p.KeepaliveInterval.Duration
	if hold != 0 && hold < 3*time.Second {
		errs = append(errs, fieldErr(f+".holdTime", "want 0 or at least 3s (RFC 4271), got %s", hold))
	}
	if hold > 65535*time.Second {
		errs = append(errs, fieldErr(f+".holdTime", "at most 65535s"))
	}
	if hold%time.Second != 0 || ka%time.Second != 0 || p.ConnectRetry.Duration%time.Second != 0 {
		errs = append(errs, fieldErr(f, "holdTime, keepaliveInterval and connectRetry are whole seconds in BGP"))
	}
	if ka == 0 || ka >= hold {
		errs = append(errs, fieldErr(f+".keepaliveInterval", "must be > 0 and less than holdTime (%s), got %s", hold, ka))
	}
	if p.EBGPMultihopTTL != 0 && p.TTLMin != 0 {
		errs = append(errs, fieldErr(f+".ttlMin", "GTSM (ttlMin) and ebgpMultihopTTL are mutually exclusive"))
	}
	if p.PasswordFile != "" {
		if _, err := ReadPassword(p.PasswordFile); err != nil {
			errs = append(errs, fieldErr(f+".passwordFile", "%v", err))
		}
	}
	if mp := p.MaxPrefix; mp.Limit > 0 && (mp.WarningThresholdPercent == 0 || mp.WarningThresholdPercent > 100) {
		errs = append(errs, fieldErr(f+".maxPrefix.warningThresholdPercent", "want 1-100, got %d", mp.WarningThresholdPercent))
	}
	if gr := p.GracefulRestart; gr.RestartTime.Duration > 4095*time.Second {
		errs = append(errs, fieldErr(f+".gracefulRestart.restartTime", "at most 4095s (RFC 4724), got %s", gr.RestartTime.Duration))
	}
	errs = append(errs, p.BFD.validate(f+".bfd", p.EBGPMultihopTTL))
	return addr, errors.Join(errs...)
}

// validate checks the BFD settings; values set while BFD is disabled are
// checked too, so a typo does not wait for the day it is switched on.
func (b BFD) validate(f string, multihop uint8) error {
	var errs []error
	for _, iv := range []struct {
		name string
		d    time.Duration
	}{{"minTx", b.MinTx.Duration}, {"minRx", b.MinRx.Duration}} {
		switch {
		case iv.d == 0 && !b.Enabled:
		case iv.d < MinBFDInterval || iv.d > MaxBFDInterval:
			errs = append(errs, fieldErr(f+"."+iv.name, "want %s-%s, got %s", MinBFDInterval, MaxBFDInterval, iv.d))
		case iv.d%time.Millisecond != 0:
			errs = append(errs, fieldErr(f+"."+iv.name, "want whole milliseconds, got %s", iv.d))
		}
	}
	if b.Multiplier < 0 || b.Multiplier > MaxBFDMult || b.Multiplier == 0 && b.Enabled {
		errs = append(errs, fieldErr(f+".multiplier", "want 1-%d, got %d", MaxBFDMult, b.Multiplier))
	}
	if b.Enabled && multihop != 0 {
		errs = append(errs, fieldErr(f+".enabled", "BFD is single-hop (RFC 5881, TTL 255): not with ebgpMultihopTTL"))
	}
	return errors.Join(errs...)
}

// ReadPassword reads a TCP-MD5 password file (trailing newline stripped).
func ReadPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read password file: %w", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("password file %s is empty", path)
	}
	if len(pw) > 80 {
		return "", fmt.Errorf("password in %s is longer than TCP_MD5SIG_MAXKEYLEN (80)", path)
	}
	return pw, nil
}

// Prefixes parses and checks podCIDRs: valid, canonical, at most one per
// family, not overlapping each other.
func (c *Config) Prefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	if len(c.PodCIDRs) == 0 {
		return nil, fieldErr("podCIDRs", "at least one pod CIDR is required")
	}
	for i, s := range c.PodCIDRs {
		f := fmt.Sprintf("podCIDRs[%d]", i)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			errs = append(errs, fieldErr(f, "invalid CIDR %q", s))
			continue
		}
		if p.Masked() != p {
			errs = append(errs, fieldErr(f, "%s has host bits set (did you mean %s?)", p, p.Masked()))
			continue
		}
		if p.Bits() == 0 {
			errs = append(errs, fieldErr(f, "%s is a default route, not a pod CIDR", p))
			continue
		}
		for j, q := range out {
			if q.Overlaps(p) {
				errs = append(errs, fieldErr(f, "%s overlaps podCIDRs[%d] %s", p, j, q))
			}
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

// PeerAddr returns the parsed address of a validated peer.
func (p Peer) PeerAddr() netip.Addr { return netip.MustParseAddr(p.Address).Unmap() }
