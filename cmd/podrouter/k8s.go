package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/podrouter/podrouter/agent"
	"github.com/podrouter/podrouter/bgp"
	"github.com/podrouter/podrouter/k8s"
)

// Kubernetes mode (kubernetes.enabled): the Node, not the config file, says
// which pod CIDRs this node owns, whether it is drained, and its per-node
// peering; the password comes from a Secret. Wiring in cmdRun, in order:
//
//	kube, err := startKubernetes(ctx, kubeConfig(cfg), log.With("subsys", "k8s"))
//	snap := kube.Snapshot()                 // pods := snap.State.PodCIDRs
//	kube.InitPeering(peers)                 // the Node's overrides and password, before bgp.New
//	...speaker, installer, fp, ag as today (fp needs snap.State.PodCIDRs)...
//	ag.SetNodeState(snap.State)             // instead of the config's podCIDRs
//	kubeRun := kube.Runner(ag, speaker, fp, peers)
//	g.Go(func() error { return kubeRun(gctx) }) // with the other goroutines
//
// where kubeConfig maps the config file's kubernetes section onto k8s.Config.

// kubeBootstrapTimeout bounds the first read of the Node and the Secret.
const kubeBootstrapTimeout = 30 * time.Second

// kubeMode is the daemon's Kubernetes edge.
type kubeMode struct {
	log     *slog.Logger
	adapter *k8s.Adapter
	health  *kubeHealth
	snap    k8s.Snapshot
}

// startKubernetes builds the adapter and reads this node's Node and the
// password Secret once, so that the speaker can be built with the Node's
// ASN, router ID, extra peers and password. It fails when the Node cannot
// be read or has unusable pod CIDRs; malformed peering overrides only warn
// (the configured peering is used, and the adapter records an Event).
func startKubernetes(ctx context.Context, kc k8s.Config, log *slog.Logger) (*kubeMode, error) {
	// client-go logs through klog; send it to our logger instead of stderr.
	klog.SetSlogLogger(log.With("component", "client-go"))
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
	return &kubeMode{log: log, adapter: a, health: h, snap: snap}, nil
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
// peer), and the Secret's password on every peer.
func applyPeering(sc *bgp.Config, p k8s.Peering, password string) {
	if p.ASN != 0 {
		sc.ASN = p.ASN
	}
	if p.RouterID.IsValid() {
		sc.RouterID = p.RouterID
	}
	tmpl := bgp.PeerConfig{
		HoldTime: 9 * time.Second, KeepaliveInterval: 3 * time.Second, ConnectRetry: 5 * time.Second,
		GracefulRestart: true, RestartTime: 120 * time.Second,
	}
	if len(sc.Peers) > 0 {
		tmpl = sc.Peers[0]
		tmpl.LocalAddress = netip.Addr{}
	}
	for _, ep := range p.ExtraPeers {
		dup := false
		for _, have := range sc.Peers {
			dup = dup || have.Address == ep.Address
		}
		if dup {
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

// nodeAgent is the agent as Kubernetes mode uses it (*agent.Agent).
type nodeAgent interface {
	SetNodeState(agent.NodeState)
	Status() agent.Status
}

// Runner returns the adapter's run function for the daemon's errgroup.
// speaker and fp may be nil (no peers, no fast path reported).
func (m *kubeMode) Runner(ag nodeAgent, speaker *bgp.Speaker, fp *fastPath, p *peering) func(context.Context) error {
	m.health.set(ag, speaker, fp)
	return func(ctx context.Context) error {
		return m.adapter.Run(ctx, &kubeSink{ctx: ctx, agent: ag, peering: p})
	}
}

// kubeSink hands the Node's state to the agent and its peering and the
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

// kubeHealth reads the daemon's state for the PodrouterReady condition and
// the Node Events. Until Runner is called it reports "not reconciled".
type kubeHealth struct {
	mu      sync.Mutex
	agent   nodeAgent
	speaker *bgp.Speaker
	fp      *fastPath
}

func (h *kubeHealth) set(ag nodeAgent, sp *bgp.Speaker, fp *fastPath) {
	h.mu.Lock()
	h.agent, h.speaker, h.fp = ag, sp, fp
	h.mu.Unlock()
}

func (h *kubeHealth) Health(ctx context.Context) k8s.Health {
	h.mu.Lock()
	ag, sp, fp := h.agent, h.speaker, h.fp
	h.mu.Unlock()
	if ag == nil {
		return k8s.Health{}
	}
	st := ag.Status()
	out := k8s.Health{
		Reconciled:     st.Reconciles > 0,
		DefaultV4:      len(st.Routes[agent.IPv4].Installed),
		DefaultV6:      len(st.Routes[agent.IPv6].Installed),
		ForeignDefault: st.Routes[agent.IPv4].ForeignPresent || st.Routes[agent.IPv6].ForeignPresent,
		Datapath:       k8s.DatapathDisabled,
	}
	if sp != nil {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		peers, err := sp.Peers(pctx)
		cancel()
		if err == nil {
			for _, p := range peers {
				out.Peers = append(out.Peers, k8s.PeerHealth{Address: p.Address, Established: p.State == "established", MaxPrefixTrips: p.MaxPrefixTrips})
			}
		}
	}
	if fp != nil {
		r := fp.Report()
		out.Datapath, out.DatapathReason = r.State, r.Reason
	}
	return out
}
