package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/podrouter/podrouter/agent"
	"github.com/podrouter/podrouter/bgp"
	"github.com/podrouter/podrouter/health"
	"github.com/podrouter/podrouter/k8s"
)

// Kubernetes mode (kubernetes.enabled): the Node, not the config file, says
// which pod CIDRs this node owns, whether it is drained, and its per-node
// peering; the password comes from a Secret. Wiring in Run, in order:
//
//	kube, err := startKubernetes(ctx, kubeConfig(cfg), log.With("subsys", "k8s"))
//	node := kube.Snapshot().State         // pod CIDRs (maybe none yet), drain
//	kube.InitPeering(peers)               // the Node's overrides and password, before bgp.New
//	...speaker, fast path, agent...
//	ag.SetNodeState(node)                 // instead of the config's podCIDRs
//	g.Go(kube.Runner(ag, d, peers))       // d: the daemon's health; later Node changes reach the agent
//
// Pod CIDRs flow only through the agent's node state: a Node whose
// spec.podCIDRs arrives after start is advertised, blackholed and hooked
// in the datapath on the next reconcile.

// kubeBootstrapTimeout bounds the first read of the Node and the Secret.
const kubeBootstrapTimeout = 30 * time.Second

// kubeMode is the daemon's Kubernetes edge.
type kubeMode struct {
	log       *slog.Logger
	adapter   *k8s.Adapter
	health    *kubeHealth
	snap      k8s.Snapshot
	uninstall *k8s.Uninstall // nil without kubernetes.daemonSet
	cniPath   string         // kubernetes.cniConfPath ("": none written)
}

// startKubernetes builds the adapter and reads this node's Node and the
// password Secret once, so that the speaker can be built with the Node's
// ASN, router ID, extra peers and password. It fails when the Node cannot
// be read or has unusable pod CIDRs; malformed peering overrides only warn
// (the configured peering is used, and the adapter records an Event).
func startKubernetes(ctx context.Context, kc k8s.Config, log *slog.Logger) (*kubeMode, error) {
	h := &kubeHealth{}
	a, err := k8s.New(kc, log, h)
	if err != nil {
		return nil, err
	}
	bctx, cancel := context.WithTimeout(ctx, kubeBootstrapTimeout)
	defer cancel()
	snap, err := a.Bootstrap(bctx)
	if err != nil {
		return nil, fmt.Errorf("kubernetes mode: %w", err)
	}
	if snap.PeeringError != nil {
		log.Warn("ignoring malformed peering overrides on the node", "err", snap.PeeringError)
	}
	if len(snap.State.PodCIDRs) == 0 {
		log.Warn("node has no spec.podCIDRs yet; nothing is advertised until it has", "node", kc.NodeName)
	}
	u, err := a.Uninstall()
	if err != nil {
		return nil, err
	}
	return &kubeMode{log: log, adapter: a, health: h, snap: snap, uninstall: u, cniPath: kc.CNIConfPath}, nil
}

// uninstallCheckTimeout bounds the fresh read of the DaemonSet and the
// namespace at exit (the watches' view is used when it runs out).
const uninstallCheckTimeout = 3 * time.Second

// runUninstallWatch runs the uninstall detection's watches (a no-op
// without kubernetes.daemonSet).
func (m *kubeMode) runUninstallWatch(ctx context.Context) error {
	if m.uninstall == nil {
		return nil
	}
	return m.uninstall.Run(ctx)
}

// uninstalling reports, on the way out, whether podrouter is being
// removed from the cluster (its DaemonSet or namespace deleted), and why.
func (m *kubeMode) uninstalling() (bool, string) {
	if m.uninstall == nil {
		return false, ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), uninstallCheckTimeout)
	defer cancel()
	return m.uninstall.Check(ctx)
}

// removeConflist removes the CNI conflist podrouter wrote (uninstall).
func (m *kubeMode) removeConflist() {
	if m.cniPath == "" {
		return
	}
	removed, err := k8s.RemoveCNIConfig(m.cniPath)
	if err != nil {
		m.log.Error("remove cni conflist", "path", m.cniPath, "err", err)
		return
	}
	if removed {
		m.log.Info("removed cni conflist", "path", m.cniPath)
	}
}

// Snapshot is the Node's state at start.
func (m *kubeMode) Snapshot() k8s.Snapshot { return m.snap }

// InitPeering hands the Node's overrides and the Secret's password read at
// start to the daemon's peering, before the speaker is built from it.
func (m *kubeMode) InitPeering(p *peering) {
	ctx := context.Background() // no speaker attached yet: nothing is applied
	p.SetKube(ctx, m.snap.Peering)
	p.SetPassword(ctx, m.snap.Password)
}

// applyPeering applies the Node's overrides to a speaker config: local
// ASN, router ID, extra peers (with the settings of the first configured
// peer, or tmpl's without one), and the Secret's password on every peer.
func applyPeering(sc *bgp.Config, p k8s.Peering, password string, tmpl bgp.PeerConfig) {
	if p.ASN != 0 {
		sc.ASN = p.ASN
	}
	if p.RouterID.IsValid() {
		sc.RouterID = p.RouterID
	}
	if len(sc.Peers) > 0 {
		tmpl = sc.Peers[0]
		tmpl.LocalAddress = netip.Addr{}
	}
	for _, ep := range p.ExtraPeers {
		if hasPeer(sc.Peers, ep.Address) {
			continue
		}
		pc := tmpl
		pc.Address, pc.ASN, pc.Port = ep.Address, ep.ASN, 0
		sc.Peers = append(sc.Peers, pc)
	}
	if password != "" {
		for i := range sc.Peers {
			sc.Peers[i].Password = password
		}
	}
}

// hasPeer reports whether peers has one at addr.
func hasPeer(peers []bgp.PeerConfig, addr netip.Addr) bool {
	return slices.ContainsFunc(peers, func(pc bgp.PeerConfig) bool { return pc.Address == addr })
}

// nodeAgent is the agent as Kubernetes mode uses it (*agent.Agent).
type nodeAgent interface {
	SetNodeState(agent.NodeState)
}

// Runner returns the adapter's run function for the daemon's errgroup;
// the condition and Events render h's snapshots from now on.
func (m *kubeMode) Runner(ag nodeAgent, h k8s.HealthSource, p *peering) func(context.Context) error {
	m.health.set(h)
	return func(ctx context.Context) error {
		return m.adapter.Run(ctx, &kubeSink{ctx: ctx, agent: ag, peering: p})
	}
}

// kubeSink hands the Node's state to the agent, and its peering and the
// Secret's password to the daemon's peering, which applies changes to the
// running speaker: extra peers come and go and a rotated password re-keys
// the sessions live; a new local ASN (rack label) or router ID restarts
// the BGP server while the agent holds the kernel's default routes.
type kubeSink struct {
	ctx     context.Context
	agent   nodeAgent
	peering *peering
}

func (s *kubeSink) SetNodeState(ns agent.NodeState) { s.agent.SetNodeState(ns) }
func (s *kubeSink) SetPeering(p k8s.Peering)        { s.peering.SetKube(s.ctx, p) }
func (s *kubeSink) SetPassword(pw string)           { s.peering.SetPassword(s.ctx, pw) }

// kubeHealth is the adapter's health source, the daemon once Runner has
// handed it over; until then nothing is reconciled.
type kubeHealth struct {
	mu  sync.Mutex
	src k8s.HealthSource
}

func (h *kubeHealth) set(src k8s.HealthSource) {
	h.mu.Lock()
	h.src = src
	h.mu.Unlock()
}

func (h *kubeHealth) Snapshot(ctx context.Context) health.Snapshot {
	h.mu.Lock()
	src := h.src
	h.mu.Unlock()
	if src == nil {
		return health.Snapshot{}
	}
	return src.Snapshot(ctx)
}
