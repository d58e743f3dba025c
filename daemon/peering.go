package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/podrouter/podrouter/bgp"
	"github.com/podrouter/podrouter/config"
	"github.com/podrouter/podrouter/k8s"
	"github.com/podrouter/podrouter/routes"
)

// peerDiscoverer finds neighbours in the node's network configuration
// (*routes.Installer).
type peerDiscoverer interface {
	DiscoverPeers(ctx context.Context, links []string, gateways bool) ([]routes.DiscoveredPeer, []string, error)
}

// holder keeps the kernel's default routes while sessions come back
// (*agent.Agent).
type holder interface {
	HoldDuring(d time.Duration, fn func())
}

// peering owns the speaker's identity and neighbour set. They come from
// the config file, bgp.autoPeers discovery, and in Kubernetes mode the
// Node's overrides and the password Secret; any change is applied to the
// running speaker: peers are added, removed or re-keyed live, and a new
// local ASN or router ID restarts the BGP server while the agent holds the
// kernel's default routes.
type peering struct {
	log      *slog.Logger
	base     bgp.Config // the file's speaker config (explicit peers)
	auto     config.AutoPeers
	autoTmpl bgp.PeerConfig // settings of every discovered peer
	// extraTmpl are the settings of the Node's extra peers when the file
	// lists no peer to copy them from: the config's defaults.
	extraTmpl bgp.PeerConfig
	disc      peerDiscoverer
	hold      time.Duration

	applyMu sync.Mutex // serialises apply

	mu       sync.Mutex
	speaker  *bgp.Speaker // nil until attached
	holder   holder
	kube     k8s.Peering
	password string
	found    []routes.DiscoveredPeer
	skipped  []string
}

func newPeering(log *slog.Logger, cfg *config.Config, base bgp.Config, disc peerDiscoverer) *peering {
	p := &peering{
		log: log, base: base, auto: cfg.BGP.AutoPeers, disc: disc,
		hold: cfg.BGP.StartupHold, kube: k8s.Peering{Rack: -1},
		extraTmpl: peerConfig(config.DefaultPeer()),
	}
	p.base.Peers = slices.Clone(base.Peers)
	if p.auto.Enabled {
		p.autoTmpl = peerConfig(p.auto.Peer)
	}
	return p
}

// Desired is the speaker config from everything known now.
func (p *peering) Desired() bgp.Config {
	p.mu.Lock()
	defer p.mu.Unlock()
	want := p.base
	want.Peers = slices.Clone(p.base.Peers)
	for _, d := range p.found {
		if hasPeer(want.Peers, d.Address) {
			continue // an explicit peer wins
		}
		pc := p.autoTmpl
		pc.Address, pc.LocalAddress = d.Address, d.Local
		if p.kube.PeerASN != 0 { // this rack's ToRs (rack label, peer-asn annotation)
			pc.ASN = p.kube.PeerASN
		}
		want.Peers = append(want.Peers, pc)
	}
	applyPeering(&want, p.kube, p.password, p.extraTmpl)
	return want
}

// Discover re-reads the node's network configuration for bgp.autoPeers and
// reports whether the discovered set changed.
func (p *peering) Discover(ctx context.Context) bool {
	if !p.auto.Enabled {
		return false
	}
	found, skipped, err := p.disc.DiscoverPeers(ctx, p.auto.Interfaces, *p.auto.DefaultGateways)
	if err != nil {
		p.log.Error("discover bgp peers", "err", err)
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !slices.Equal(skipped, p.skipped) && len(skipped) > 0 {
		p.log.Warn("bgp.autoPeers: not peering with", "skipped", strings.Join(skipped, "; "))
	}
	p.skipped = skipped
	if slices.Equal(found, p.found) {
		return false
	}
	var list []string
	for _, d := range found {
		list = append(list, fmt.Sprintf("%s (%s on %s)", d.Address, d.Source, d.Link))
	}
	if len(found) == 0 {
		p.log.Warn("bgp.autoPeers: no neighbour found", "interfaces", p.auto.Interfaces, "default_gateways", *p.auto.DefaultGateways)
	} else {
		p.log.Info("bgp.autoPeers: neighbours discovered", "peers", strings.Join(list, ", "))
	}
	p.found = found
	return true
}

// Attach hands the running speaker and the agent over; later changes are
// applied to them.
func (p *peering) Attach(s *bgp.Speaker, h holder) {
	p.mu.Lock()
	p.speaker, p.holder = s, h
	p.mu.Unlock()
}

// SetKube sets the Node's overrides and applies them when they changed.
func (p *peering) SetKube(ctx context.Context, k k8s.Peering) {
	p.mu.Lock()
	same := k.Equal(p.kube)
	p.kube = k
	p.mu.Unlock()
	if !same {
		p.apply(ctx)
	}
}

// SetPassword sets the Secret's password and applies it when it changed.
func (p *peering) SetPassword(ctx context.Context, pw string) {
	p.mu.Lock()
	same := pw == p.password
	p.password = pw
	p.mu.Unlock()
	if !same {
		p.apply(ctx)
	}
}

// apply makes the running speaker match Desired.
func (p *peering) apply(ctx context.Context) {
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	p.mu.Lock()
	s, h := p.speaker, p.holder
	p.mu.Unlock()
	if s == nil {
		return
	}
	want := p.Desired()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if asn, rid := s.LocalIdentity(); asn != want.ASN || (want.RouterID.IsValid() && rid != want.RouterID) {
		var err error
		restart := func() { err = s.SetIdentity(ctx, want.ASN, want.RouterID, want.Peers) }
		if h != nil {
			h.HoldDuring(p.hold, restart)
		} else {
			restart()
		}
		if err != nil {
			p.log.Error("apply the new local ASN / router ID", "err", err)
			return
		}
		p.log.Info("local identity applied", "asn", want.ASN, "router_id", want.RouterID, "peers", len(want.Peers))
		return
	}
	if err := s.SetPeers(ctx, want.Peers); err != nil {
		p.log.Error("apply the peer set", "err", err)
		return
	}
	p.log.Debug("peering applied", "peers", len(want.Peers))
}

// Run re-discovers bgp.autoPeers neighbours every interval and applies a
// change. Without autoPeers it returns at once.
func (p *peering) Run(ctx context.Context, every time.Duration) error {
	if !p.auto.Enabled {
		return nil
	}
	// While nothing is found (uplinks not addressed yet at boot), look
	// again every second instead of every resync.
	const retry = time.Second
	for {
		p.mu.Lock()
		wait := every
		if len(p.found) == 0 {
			wait = min(every, retry)
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		if p.Discover(ctx) {
			p.apply(ctx)
		}
	}
}
