// Package config owns podrouter's configuration file: its schema, strict
// parsing (unknown fields are errors), defaults and validation. Every
// validation error names the offending field by its YAML path.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Config is the whole daemon configuration.
type Config struct {
	Node     Node           `json:"node"`
	PodCIDRs []string       `json:"podCIDRs"`
	Log      Log            `json:"log"`
	BGP      BGP            `json:"bgp"`
	Routes   Routes         `json:"routes"`
	LocalAPI LocalAPI       `json:"localAPI"`
	Metrics  Metrics        `json:"metrics"`
	Datapath Datapath       `json:"datapath"`
	Shutdown ShutdownConfig `json:"shutdown"`
}

// Node identifies this node.
type Node struct {
	Name     string `json:"name"`
	RouterID string `json:"routerID"`
}

// Log selects the log format and level.
type Log struct {
	Format string `json:"format"` // text | json
	Level  string `json:"level"`  // debug | info | warn | error
}

// BGP configures the embedded speaker.
type BGP struct {
	ASN             uint32   `json:"asn"`
	ListenPort      int32    `json:"listenPort"` // 179 by default; -1: never listen, only connect out
	ListenAddresses []string `json:"listenAddresses"`
	API             API      `json:"api"`
	Peers           []Peer   `json:"peers"`
	// StartupHold is how long after start podrouter keeps a default route it
	// finds in the kernel (left by its previous instance) while sessions
	// come back, instead of removing it because no peer offers one yet.
	StartupHold Duration `json:"startupHold"`
}

// API is the GoBGP gRPC endpoint used by the stock gobgp CLI.
type API struct {
	// Address is "host:port" with a loopback host, or "unix:///path".
	// Empty disables the gRPC API.
	Address string `json:"address"`
}

// Peer is one BGP neighbour (a ToR). An IPv4 address gives an IPv4-unicast
// session, an IPv6 address an IPv6-unicast session.
type Peer struct {
	Address           string          `json:"address"`
	ASN               uint32          `json:"asn"`
	LocalAddress      string          `json:"localAddress"`
	HoldTime          Duration        `json:"holdTime"`
	KeepaliveInterval Duration        `json:"keepaliveInterval"`
	ConnectRetry      Duration        `json:"connectRetry"`
	EBGPMultihopTTL   uint8           `json:"ebgpMultihopTTL"`
	TTLMin            uint8           `json:"ttlMin"` // GTSM (RFC 5082): 255 for directly connected peers
	PasswordFile      string          `json:"passwordFile"`
	GracefulRestart   GracefulRestart `json:"gracefulRestart"`
	MaxPrefix         MaxPrefix       `json:"maxPrefix"`
}

// GracefulRestart configures RFC 4724 graceful restart for a peer.
type GracefulRestart struct {
	Enabled     *bool    `json:"enabled"` // default true
	RestartTime Duration `json:"restartTime"`
}

// MaxPrefix bounds how many prefixes a peer may send before its session is
// torn down; podrouter re-enables the peer after RestartAfter.
type MaxPrefix struct {
	Limit                   uint32   `json:"limit"` // 0: no limit
	WarningThresholdPercent uint8    `json:"warningThresholdPercent"`
	RestartAfter            Duration `json:"restartAfter"`
}

// Routes configures the kernel default route podrouter installs.
type Routes struct {
	Protocol       int      `json:"protocol"`
	Table          int      `json:"table"`
	Metric         int      `json:"metric"`
	ResyncInterval Duration `json:"resyncInterval"`
}

// LocalAPI is the unix socket serving podrouter's own CLI.
type LocalAPI struct {
	Socket string `json:"socket"`
}

// Metrics is the Prometheus/health listener.
type Metrics struct {
	Address string `json:"address"` // host:port; empty disables
}

// Datapath configures the eBPF fast path.
type Datapath struct {
	Enabled bool   `json:"enabled"`
	PinDir  string `json:"pinDir"`
}

// ShutdownConfig selects what SIGTERM does.
type ShutdownConfig struct {
	// Mode is "graceful-restart" (default: exit without a NOTIFICATION, the
	// ToR keeps our routes as stale, the kernel keeps the default route) or
	// "drain" (withdraw, close sessions, remove the default route).
	Mode string `json:"mode"`
}

// Shutdown modes.
const (
	ShutdownGracefulRestart = "graceful-restart"
	ShutdownDrain           = "drain"
)

// Duration is a time.Duration written as a Go duration string ("9s").
type Duration struct{ time.Duration }

// UnmarshalJSON accepts a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string like \"9s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", s)
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

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
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, fmt.Errorf("parse config: %s", cleanYAMLError(err))
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// cleanYAMLError turns sigs.k8s.io/yaml's layered message into one that
// names the field plainly.
func cleanYAMLError(err error) string {
	s := err.Error()
	s = strings.ReplaceAll(s, "error unmarshaling JSON: while decoding JSON: ", "")
	s = strings.ReplaceAll(s, "json: ", "")
	return s
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
	for i := range c.BGP.Peers {
		p := &c.BGP.Peers[i]
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
	if rid, err := netip.ParseAddr(c.Node.RouterID); err != nil || !rid.Is4() || rid.IsUnspecified() {
		add(fieldErr("node.routerID", "want a non-zero IPv4 address, got %q", c.Node.RouterID))
	}
	add(validateFormat(c.Log))
	_, err := c.Prefixes()
	add(err)
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
		if _, err := netip.ParseAddrPort(c.Metrics.Address); err != nil {
			add(fieldErr("metrics.address", "want ip:port, got %q", c.Metrics.Address))
		}
	}
	if c.Shutdown.Mode != ShutdownGracefulRestart && c.Shutdown.Mode != ShutdownDrain {
		add(fieldErr("shutdown.mode", "want %q or %q, got %q", ShutdownGracefulRestart, ShutdownDrain, c.Shutdown.Mode))
	}
	return errors.Join(errs...)
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
	return addr, errors.Join(errs...)
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
