package config

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/podrouter/podrouter/datapath"
)

// Limits on what a config may hold. Each bounds the work and memory one
// input can cost; the file itself is bounded by MaxFileSize.
const (
	MaxCTSize    = datapath.MaxCTSize
	MaxPassCIDRs = datapath.MaxPrefixes
	MaxPrepend   = 10
	MaxPodCIDRs  = 64 // Kubernetes gives one per family
	// MaxLongLivedStaleTime is RFC 9494's 24-bit stale time in seconds.
	MaxLongLivedStaleTime = 16777215 * time.Second
	MaxPeers              = 256 // explicit bgp.peers
	MaxAddresses          = 64  // bgp.listenAddresses
	MaxInterfaces         = 256 // datapath.uplinks, bgp.autoPeers.interfaces
	MaxNodeNameLen        = 253 // a Kubernetes Node name is a DNS subdomain
	MaxPathLen            = 4096
	MaxSocketPath         = 107 // sun_path holds 108 bytes with the NUL
	MaxPasswordLen        = 80  // TCP_MD5SIG_MAXKEYLEN
	MaxPasswordFile       = 4096
	MaxFileSize           = 1 << 20
	MaxStringLen          = 1024 // any other string
)

// BFD interval bounds: FRR's bfdd accepts 10ms-60s, and GoBGP carries the
// intervals in microseconds.
const (
	MinBFDInterval = 10 * time.Millisecond
	MaxBFDInterval = 60 * time.Second
	MaxBFDMult     = 255
)

// FieldError is a validation error bound to one field, named by its YAML
// path ("bgp.peers[0].holdTime").
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, a ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// errs collects validation errors.
type errs []error

func (e *errs) add(err error) {
	if err != nil {
		*e = append(*e, err)
	}
}

func (e *errs) addf(field, format string, a ...any) { e.add(fieldErr(field, format, a...)) }

// Validate checks every field of a config with its defaults applied and
// returns all problems joined. It does no I/O and runs in time linear (or
// n log n) in the size of the config.
func (c *Config) Validate() error {
	var e errs
	// In Kubernetes mode the router ID and pod CIDRs may come from the Node.
	k8s := c.Kubernetes.Enabled
	switch {
	case c.Node.Name == "":
		e.addf("node.name", "required")
	case len(c.Node.Name) > MaxNodeNameLen:
		e.addf("node.name", "%d characters: a node name is a DNS subdomain of at most %d", len(c.Node.Name), MaxNodeNameLen)
	case !isDNSSubdomain(c.Node.Name):
		e.addf("node.name", "%q is not a DNS subdomain (lowercase letters, digits, '-' and '.', starting and ending alphanumeric)", c.Node.Name)
	}
	if rid := c.Node.RouterID; (!rid.Is4() || rid.IsUnspecified()) && !(k8s && !rid.IsValid()) {
		e.addf("node.routerID", "want a non-zero IPv4 address, got %q", addrString(rid))
	}
	e.add(validateLog(c.Log))
	if !(k8s && len(c.PodCIDRs) == 0) {
		e.add(validatePodCIDRs(c.PodCIDRs))
	}
	if k8s {
		e.add(c.Kubernetes.validate())
	}
	e.add(c.BGP.validate(c.Node.RouterID))
	if c.Routes.Protocol < 5 || c.Routes.Protocol > 255 {
		e.addf("routes.protocol", "want 5-255 (0-4 are the kernel's own), got %d", c.Routes.Protocol)
	}
	if c.Routes.Table < 1 || c.Routes.Table > 0xfffffffe || c.Routes.Table == 255 {
		e.addf("routes.table", "want a routing table id other than local (255), got %d", c.Routes.Table)
	}
	if c.Routes.Metric < 0 {
		e.addf("routes.metric", "must not be negative")
	}
	if c.Routes.ResyncInterval <= 0 {
		e.addf("routes.resyncInterval", "must be positive, got %s", c.Routes.ResyncInterval)
	}
	e.add(validateSocketPath("localAPI.socket", c.LocalAPI.Socket))
	if ap := c.Metrics.Address; !ap.Addr().Unmap().IsLoopback() && !c.Metrics.AllowNonLoopback {
		e.addf("metrics.address", "%s is not a loopback address; set metrics.allowNonLoopback to listen on it", ap.Addr())
	}
	e.add(c.Datapath.validate())
	if c.Shutdown.Mode != ShutdownGracefulRestart && c.Shutdown.Mode != ShutdownDrain {
		e.addf("shutdown.mode", "want %q or %q, got %q", ShutdownGracefulRestart, ShutdownDrain, clip(c.Shutdown.Mode))
	}
	return errors.Join(e...)
}

func (k Kubernetes) validate() error {
	var e errs
	if k.MTU < 0 || k.MTU > 65535 {
		e.addf("kubernetes.mtu", "want 0 (from the uplinks) or 68-65535, got %d", k.MTU)
	}
	if k.CNIConfPath != "" && !strings.HasPrefix(k.CNIConfPath, "/") {
		e.addf("kubernetes.cniConfPath", "want an absolute path, got %q", clip(k.CNIConfPath))
	}
	if k.PasswordSecret != "" && k.Namespace == "" {
		e.addf("kubernetes.namespace", "required with kubernetes.passwordSecret")
	}
	if k.Namespace != "" && (len(k.Namespace) > 63 || !isDNSLabel(k.Namespace)) {
		e.addf("kubernetes.namespace", "%q is not a namespace name (a DNS label of at most 63 characters)", clip(k.Namespace))
	}
	if k.DaemonSet != "" && k.Namespace == "" {
		e.addf("kubernetes.namespace", "required with kubernetes.daemonSet")
	}
	if k.DaemonSet != "" && (len(k.DaemonSet) > MaxNodeNameLen || !isDNSSubdomain(k.DaemonSet)) {
		e.addf("kubernetes.daemonSet", "%q is not a DaemonSet name (a DNS subdomain)", clip(k.DaemonSet))
	}
	if k.PasswordSecret != "" && (len(k.PasswordSecret) > MaxNodeNameLen || !isDNSSubdomain(k.PasswordSecret)) {
		e.addf("kubernetes.passwordSecret", "%q is not a Secret name (a DNS subdomain)", clip(k.PasswordSecret))
	}
	for _, s := range []struct{ f, v string }{
		{"kubernetes.kubeconfig", k.Kubeconfig}, {"kubernetes.cniConfPath", k.CNIConfPath}, {"kubernetes.cniDataDir", k.CNIDataDir},
	} {
		if len(s.v) > MaxPathLen {
			e.addf(s.f, "longer than %d bytes", MaxPathLen)
		}
	}
	for _, s := range []struct{ f, v string }{{"kubernetes.passwordKey", k.PasswordKey}, {"kubernetes.drainTaint", k.DrainTaint}} {
		if len(s.v) > MaxStringLen {
			e.addf(s.f, "longer than %d bytes", MaxStringLen)
		}
	}
	if key, _, _ := strings.Cut(k.DrainTaint, "="); k.DrainTaint != "" && key == "" {
		e.addf("kubernetes.drainTaint", "%q has no key", clip(k.DrainTaint))
	}
	if k.StatusInterval < 0 || k.Resync < 0 {
		e.addf("kubernetes", "statusInterval and resync must not be negative")
	}
	if u := k.KubeProxyModeURL; u != "" && u != KubeProxyProbeOff {
		if len(u) > MaxPathLen {
			e.addf("kubernetes.kubeProxyModeURL", "longer than %d bytes", MaxPathLen)
		} else if pu, err := url.Parse(u); err != nil || pu.Scheme != "http" || pu.Host == "" || pu.User != nil {
			e.addf("kubernetes.kubeProxyModeURL", "want an http://host:port/path URL (kube-proxy's metrics port) or %q, got %q",
				KubeProxyProbeOff, clip(u))
		}
	}
	return errors.Join(e...)
}

func (b BGP) validate(routerID netip.Addr) error {
	var e errs
	e.add(validateASN("bgp.asn", b.ASN))
	if b.ListenPort < -1 || b.ListenPort > 65535 {
		e.addf("bgp.listenPort", "want 1-65535 or -1 (do not listen), got %d", b.ListenPort)
	}
	if len(b.ListenAddresses) > MaxAddresses {
		e.addf("bgp.listenAddresses", "at most %d addresses, got %d", MaxAddresses, len(b.ListenAddresses))
	} else {
		for i, a := range b.ListenAddresses {
			e.add(zoneOnGlobal(fmt.Sprintf("bgp.listenAddresses[%d]", i), a))
		}
	}
	e.add(validateAPIAddress(b.API.Address))
	if b.StartupHold < 0 {
		e.addf("bgp.startupHold", "must not be negative")
	}
	self := selfAddrs{routerID: routerID, listen: b.ListenAddresses}
	if len(b.Peers) > MaxPeers {
		e.addf("bgp.peers", "at most %d peers, got %d", MaxPeers, len(b.Peers))
	} else {
		seen := make(map[netip.Addr]int, len(b.Peers))
		for i := range b.Peers {
			f := fmt.Sprintf("bgp.peers[%d]", i)
			p := &b.Peers[i]
			e.add(p.validate(f, self))
			if a := p.Address.Unmap(); a.IsValid() {
				if j, dup := seen[a]; dup {
					e.addf(f+".address", "duplicate peer %s (also bgp.peers[%d])", a, j)
				} else {
					seen[a] = i
				}
			}
		}
	}
	if ap := b.AutoPeers; ap.Enabled {
		const f = "bgp.autoPeers"
		if ap.Address.IsValid() {
			e.addf(f+".address", "discovered, must not be set")
		}
		if ap.LocalAddress.IsValid() {
			e.addf(f+".localAddress", "discovered, must not be set")
		}
		t := ap.Peer
		t.Address, t.LocalAddress = netip.MustParseAddr("192.0.2.1"), netip.Addr{} // stand in for the discovered ones
		e.add(t.validate(f, selfAddrs{}))
		e.add(validateIfNames(f+".interfaces", ap.Interfaces, false))
	}
	switch d := b.Drain; d.Mode {
	case DrainWithdraw:
	case DrainDeprefer:
		if d.ASPathPrepend > MaxPrepend {
			e.addf("bgp.drain.asPathPrepend", "at most %d, got %d", MaxPrepend, d.ASPathPrepend)
		}
	default:
		e.addf("bgp.drain.mode", "want %q or %q, got %q", DrainWithdraw, DrainDeprefer, clip(d.Mode))
	}
	return errors.Join(e...)
}

// selfAddrs are the node's own addresses as the config names them: a peer
// there would be the node itself.
type selfAddrs struct {
	routerID netip.Addr
	listen   []netip.Addr
}

func (s selfAddrs) name(a netip.Addr) string {
	if s.routerID.IsValid() && a == s.routerID {
		return "node.routerID"
	}
	if i := slices.Index(s.listen, a); i >= 0 {
		return fmt.Sprintf("bgp.listenAddresses[%d]", i)
	}
	return ""
}

func (p *Peer) validate(f string, self selfAddrs) error {
	var e errs
	addr := p.Address.Unmap()
	switch {
	case !addr.IsValid() || addr.IsUnspecified():
		e.addf(f+".address", "want an IP address, got %q", addrString(p.Address))
	case addr.Zone() != "" && !addr.IsLinkLocalUnicast():
		e.addf(f+".address", "%s: a zone (%%%s) is for link-local addresses only", addr, addr.Zone())
	case addr.Zone() != "" || addr.IsLinkLocalUnicast():
		e.addf(f+".address", "want a global address (GoBGP peers by global address), got %q", addr)
	case addr.IsLoopback() || addr.IsMulticast() || addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		e.addf(f+".address", "%s is not a neighbour's unicast address", addr)
	case self.name(addr) != "":
		e.addf(f+".address", "%s is this node's own address (%s): a peer must be another router", addr, self.name(addr))
	}
	e.add(validateASN(f+".asn", p.ASN))
	if la := p.LocalAddress; la.IsValid() {
		switch {
		case la.Zone() != "" && !la.IsLinkLocalUnicast():
			e.addf(f+".localAddress", "%s: a zone (%%%s) is for link-local addresses only", la, la.Zone())
		case addr.IsValid() && la.Unmap().Is4() != addr.Is4():
			e.addf(f+".localAddress", "%s is not of the same family as the peer %s", la, addr)
		case addr.IsValid() && la.Unmap() == addr:
			e.addf(f+".localAddress", "%s is the peer's own address", la)
		}
	}
	hold, ka := p.HoldTime, p.KeepaliveInterval
	if hold != 0 && hold < 3*time.Second {
		e.addf(f+".holdTime", "want 0 or at least 3s (RFC 4271), got %s", hold)
	}
	if hold > 65535*time.Second {
		e.addf(f+".holdTime", "at most 65535s")
	}
	if hold%time.Second != 0 || ka%time.Second != 0 || p.ConnectRetry%time.Second != 0 {
		e.addf(f, "holdTime, keepaliveInterval and connectRetry are whole seconds in BGP")
	}
	if ka <= 0 || ka >= hold {
		e.addf(f+".keepaliveInterval", "must be > 0 and less than holdTime (%s), got %s", hold, ka)
	}
	if p.ConnectRetry < 0 || p.ConnectRetry > 65535*time.Second {
		e.addf(f+".connectRetry", "want 1s-65535s, got %s", p.ConnectRetry)
	}
	if p.EBGPMultihopTTL != 0 && p.TTLMin != 0 {
		e.addf(f+".ttlMin", "GTSM (ttlMin) and ebgpMultihopTTL are mutually exclusive")
	}
	if len(p.PasswordFile) > MaxPathLen {
		e.addf(f+".passwordFile", "longer than %d bytes", MaxPathLen)
	}
	if mp := p.MaxPrefix; mp.Limit > 0 && (mp.WarningThresholdPercent == 0 || mp.WarningThresholdPercent > 100) {
		e.addf(f+".maxPrefix.warningThresholdPercent", "want 1-100, got %d", mp.WarningThresholdPercent)
	}
	if p.MaxPrefix.RestartAfter < 0 {
		e.addf(f+".maxPrefix.restartAfter", "must not be negative")
	}
	if rt := p.GracefulRestart.RestartTime; rt > 4095*time.Second || rt < 0 {
		e.addf(f+".gracefulRestart.restartTime", "at most 4095s (RFC 4724), got %s", rt)
	}
	if st := p.GracefulRestart.LongLivedStaleTime; st != 0 {
		switch {
		case st < time.Second || st > MaxLongLivedStaleTime || st%time.Second != 0:
			e.addf(f+".gracefulRestart.longLivedStaleTime", "want whole seconds from 1s to %s (RFC 9494: 24 bits), got %s", MaxLongLivedStaleTime, st)
		case p.GracefulRestart.Enabled != nil && !*p.GracefulRestart.Enabled:
			e.addf(f+".gracefulRestart.longLivedStaleTime", "long-lived graceful restart needs gracefulRestart.enabled")
		}
	}
	e.add(p.BFD.validate(f+".bfd", p.EBGPMultihopTTL))
	return errors.Join(e...)
}

// validate checks the BFD settings; values set while BFD is disabled are
// checked too, so a typo does not wait for the day it is switched on.
func (b BFD) validate(f string, multihop uint8) error {
	var e errs
	for _, iv := range []struct {
		name string
		d    time.Duration
	}{{"minTx", b.MinTx}, {"minRx", b.MinRx}} {
		switch {
		case iv.d == 0 && !b.Enabled:
		case iv.d < MinBFDInterval || iv.d > MaxBFDInterval:
			e.addf(f+"."+iv.name, "want %s-%s, got %s", MinBFDInterval, MaxBFDInterval, iv.d)
		case iv.d%time.Millisecond != 0:
			e.addf(f+"."+iv.name, "want whole milliseconds, got %s", iv.d)
		}
	}
	if b.Multiplier < 0 || b.Multiplier > MaxBFDMult || b.Multiplier == 0 && b.Enabled {
		e.addf(f+".multiplier", "want 1-%d, got %d", MaxBFDMult, b.Multiplier)
	}
	if b.Enabled && multihop != 0 {
		e.addf(f+".enabled", "BFD is single-hop (RFC 5881, TTL 255): not with ebgpMultihopTTL")
	}
	return errors.Join(e...)
}

func (d Datapath) validate() error {
	var e errs
	if !strings.HasPrefix(d.PinDir, "/") || filepath.Clean(d.PinDir) == "/" || len(d.PinDir) > MaxPathLen {
		e.addf("datapath.pinDir", "want an absolute directory path other than /, got %q", clip(d.PinDir))
	}
	if d.Enabled && len(d.Uplinks) == 0 {
		e.addf("datapath.uplinks", "required when datapath.enabled (the interfaces towards the ToRs)")
	}
	e.add(validateIfNames("datapath.uplinks", d.Uplinks, true))
	for _, s := range []struct {
		f string
		v int
	}{{"datapath.ctSizeTCP", d.CTSizeTCP}, {"datapath.ctSizeOther", d.CTSizeOther}} {
		if s.v < 1 || s.v > MaxCTSize {
			e.addf(s.f, "want 1-%d entries (0: default), got %d", MaxCTSize, s.v)
		}
	}
	if len(d.PassCIDRs) > MaxPassCIDRs {
		e.addf("datapath.passCIDRs", "at most %d prefixes, got %d", MaxPassCIDRs, len(d.PassCIDRs))
		return errors.Join(e...)
	}
	for i, p := range d.PassCIDRs {
		if p.Masked() != p {
			e.addf(fmt.Sprintf("datapath.passCIDRs[%d]", i), "%s has host bits set (did you mean %s?)", p, p.Masked())
		}
	}
	switch d.KernelConntrack {
	case KernelConntrackAuto, KernelConntrackNAT, KernelConntrackAny:
	default:
		e.addf("datapath.kernelConntrack", "want %q, %q or %q, got %q",
			KernelConntrackAuto, KernelConntrackNAT, KernelConntrackAny, clip(d.KernelConntrack))
	}
	return errors.Join(e...)
}

// validatePodCIDRs checks podCIDRs: canonical, not /0, not overlapping
// each other. Overlaps are found by sorting and one sweep (n log n), not
// by comparing every pair.
func validatePodCIDRs(ps []netip.Prefix) error {
	if len(ps) == 0 {
		return fieldErr("podCIDRs", "at least one pod CIDR is required")
	}
	if len(ps) > MaxPodCIDRs {
		return fieldErr("podCIDRs", "at most %d pod CIDRs, got %d", MaxPodCIDRs, len(ps))
	}
	var e errs
	type item struct {
		p netip.Prefix
		i int
	}
	ok := make([]item, 0, len(ps))
	for i, p := range ps {
		f := fmt.Sprintf("podCIDRs[%d]", i)
		switch {
		case !p.IsValid():
			e.addf(f, "empty: want a CIDR like 10.244.1.0/24")
		case p.Masked() != p:
			e.addf(f, "%s has host bits set (did you mean %s?)", p, p.Masked())
		case p.Bits() == 0:
			e.addf(f, "%s is a default route, not a pod CIDR", p)
		default:
			ok = append(ok, item{p, i})
		}
	}
	// Sorted by address then length, a prefix overlaps an earlier one
	// exactly when it lies inside the widest-reaching earlier prefix of
	// its family (masked prefixes nest or are disjoint).
	slices.SortFunc(ok, func(a, b item) int {
		return cmp.Or(a.p.Addr().Compare(b.p.Addr()), cmp.Compare(a.p.Bits(), b.p.Bits()), cmp.Compare(a.i, b.i))
	})
	var cover *item
	var overlaps []error
	for k := range ok {
		it := &ok[k]
		if cover != nil && cover.p.Addr().Is4() == it.p.Addr().Is4() && cover.p.Contains(it.p.Addr()) {
			// Report on the later entry, naming the earlier, as the file reads.
			a, b := *cover, *it
			if a.i > b.i {
				a, b = b, a
			}
			overlaps = append(overlaps, fieldErr(fmt.Sprintf("podCIDRs[%d]", b.i), "%s overlaps podCIDRs[%d] %s", b.p, a.i, a.p))
			continue
		}
		cover = it
	}
	slices.SortFunc(overlaps, func(x, y error) int { return strings.Compare(x.Error(), y.Error()) })
	return errors.Join(append(e, overlaps...)...)
}

func validateLog(l Log) error {
	var e errs
	if l.Format != "text" && l.Format != "json" {
		e.addf("log.format", "want text or json, got %q", clip(l.Format))
	}
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		e.addf("log.level", "want debug, info, warn or error, got %q", clip(l.Level))
	}
	return errors.Join(e...)
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
			return fieldErr(f, "unix socket path must be absolute, got %q", clip(a))
		}
		return validateSocketPath(f, p)
	}
	ap, err := netip.ParseAddrPort(a)
	if err != nil {
		return fieldErr(f, "want loopback ip:port or unix:///path, got %q", clip(a))
	}
	if !ap.Addr().IsLoopback() {
		return fieldErr(f, "%s is not a loopback address; the gRPC API must not be reachable from the network", ap.Addr())
	}
	return nil
}

func validateSocketPath(f, p string) error {
	switch {
	case p == "":
		return nil
	case !strings.HasPrefix(p, "/"):
		return fieldErr(f, "want an absolute path, got %q", clip(p))
	case len(p) > MaxSocketPath:
		return fieldErr(f, "%d bytes: a unix socket path holds at most %d", len(p), MaxSocketPath)
	}
	return nil
}

// validateIfNames checks a list of interface names (and duplicates when
// noDup).
func validateIfNames(f string, names []string, noDup bool) error {
	if len(names) > MaxInterfaces {
		return fieldErr(f, "at most %d interfaces, got %d", MaxInterfaces, len(names))
	}
	var e errs
	seen := make(map[string]int, len(names))
	for i, n := range names {
		fi := fmt.Sprintf("%s[%d]", f, i)
		if !validIfName(n) {
			e.addf(fi, "not a valid interface name: %q", clip(n))
		}
		if j, dup := seen[n]; dup && noDup {
			e.addf(fi, "duplicate uplink %q (also %s[%d])", n, f, j)
		}
		seen[n] = i
	}
	return errors.Join(e...)
}

// validIfName reports whether n can be a Linux interface name.
func validIfName(n string) bool {
	return n != "" && len(n) <= 15 && !strings.ContainsAny(n, "/: \t\n") && n != "." && n != ".."
}

// zoneOnGlobal refuses an address with a zone unless it is link-local.
func zoneOnGlobal(f string, a netip.Addr) error {
	if a.Zone() != "" && !a.IsLinkLocalUnicast() {
		return fieldErr(f, "%s: a zone (%%%s) is for link-local addresses only", a, a.Zone())
	}
	return nil
}

// isDNSSubdomain reports whether s is an RFC 1123 subdomain as Kubernetes
// names objects (length checked by the caller).
func isDNSSubdomain(s string) bool {
	if s == "" {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if !isDNSLabel(label) {
			return false
		}
	}
	return true
}

// isDNSLabel reports whether s is an RFC 1123 label: lowercase
// alphanumerics and '-', starting and ending alphanumeric, 1-63 long.
func isDNSLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// addrString is a for messages: "" for the zero Addr.
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// clip shortens a value quoted in a message: a huge field must not make a
// huge error.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:max], len(s))
}
