package main

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/podrouter/podrouter/agent"
	"github.com/podrouter/podrouter/bgp"
	"github.com/podrouter/podrouter/config"
	"github.com/podrouter/podrouter/datapath"
	"github.com/podrouter/podrouter/metrics"
	"github.com/podrouter/podrouter/routes"
)

// startObservability builds the /metrics, /healthz and /readyz listener on
// cfg.Metrics.Address (empty: disabled, run returns at once with nil). It
// does no I/O; run listens and serves until its context ends. dp is nil
// when the eBPF fast path is disabled.
//
// The listener must be on loopback: config has no switch to allow anything
// else yet (it would be metrics.allowNonLoopback, passed through below), so
// a non-loopback metrics.address fails here with metrics.ErrNonLoopback.
func startObservability(ctx context.Context, cfg *config.Config, log *slog.Logger,
	sp *bgp.Speaker, ag *agent.Agent, ri *routes.Installer, dp *datapath.Datapath,
) (run func(context.Context) error, err error) {
	_ = ctx // nothing to do before run; kept so wiring can pass its context
	if !cfg.Metrics.Address.IsValid() {
		return func(context.Context) error { return nil }, nil
	}
	src := metrics.Sources{
		Peers:  peerSource{sp},
		Agent:  agentSource{ag},
		Routes: routeSource{ri},
	}
	if dp != nil {
		src.Datapath = &datapathSource{dp: dp, uplinks: cfg.Datapath.Uplinks, ctCapacity: ctCapacity(cfg.Datapath)}
	}
	srv, err := metrics.New(metrics.Config{
		Address:          cfg.Metrics.Address.String(),
		AllowNonLoopback: cfg.Metrics.AllowNonLoopback,
		Version:          version,
	}, log.With("subsys", "metrics"), src)
	if err != nil {
		return nil, err
	}
	return srv.Run, nil
}

// peerSource adapts the BGP speaker.
type peerSource struct{ sp *bgp.Speaker }

func (p peerSource) Peers(ctx context.Context) ([]metrics.Peer, error) {
	ps, err := p.sp.Peers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]metrics.Peer, 0, len(ps))
	for _, s := range ps {
		afi := "ipv4"
		if s.Address.Unmap().Is6() {
			afi = "ipv6" // one session per family: the peer address's
		}
		out = append(out, metrics.Peer{
			Address: s.Address, ASN: s.ASN, AFI: afi, State: s.State,
			Uptime: s.Uptime, Flaps: uint64(s.Flaps),
			Received: s.Received, Accepted: s.Accepted, Advertised: s.Advertised,
			MaxPrefixTrips: s.MaxPrefixTrips,
			UpdatesIn:      s.UpdatesIn, UpdatesOut: s.UpdatesOut, GRState: s.GracefulRestart,
			BFD: s.BFD,
		})
	}
	return out, nil
}

// agentSource adapts the reconcile loop's status.
type agentSource struct{ ag *agent.Agent }

func (a agentSource) AgentState() metrics.AgentState {
	st := a.ag.Status()
	out := metrics.AgentState{
		Reconciles: st.Reconciles, Errors: st.Errors,
		LastAt: st.At, LastDuration: st.Duration, LastError: st.Err,
		LastErrorPeerOnly: peerOnlyError(st.Err),
	}
	if st.Reconciles == 0 {
		return out
	}
	for _, fam := range []agent.Family{agent.IPv4, agent.IPv6} {
		r := st.Routes[fam]
		name := "ipv4"
		if fam == agent.IPv6 {
			name = "ipv6"
		}
		out.Families = append(out.Families, metrics.FamilyState{
			Family: name, Learned: len(st.Learned[fam]), Installed: len(r.Installed),
			Holding: st.Holding[fam], ForeignPresent: r.ForeignPresent, ForeignBlocking: r.ForeignBlocking,
		})
	}
	return out
}

// peerOnlyError reports whether every line of a reconcile error is about
// reading what the peers offer (the agent's "read learned defaults"), not
// about applying the configuration. The agent reports one joined string;
// a structured error kind in agent.Status would make this exact.
func peerOnlyError(s string) bool {
	if s == "" {
		return false
	}
	for line := range strings.SplitSeq(s, "\n") {
		if !strings.HasPrefix(line, "read learned defaults:") {
			return false
		}
	}
	return true
}

// routeSource adapts the route installer's counters.
type routeSource struct{ ri *routes.Installer }

func (r routeSource) RouteStats() metrics.RouteStats {
	s := r.ri.Stats()
	return metrics.RouteStats{
		Installs: s.Installs, Removals: s.Removals,
		DriftMissing: s.DriftMissing, DriftChanged: s.DriftChanged, ForeignSeen: s.ForeignSeen,
		Writes: s.Writes, WriteErrors: s.WriteErrors,
		DumpsInterrupted: s.DumpsInterrupted, Resubscriptions: s.Resubscriptions,
	}
}

// ctCapacity is the size of each conntrack map: the configured one, or
// the datapath's default (datapath.Config: 262144 and 65536) for 0.
func ctCapacity(c config.Datapath) map[string]int {
	or := func(v, def int) int {
		if v > 0 {
			return v
		}
		return def
	}
	return map[string]int{"ct_tcp": or(c.CTSizeTCP, 262144), "ct_other": or(c.CTSizeOther, 65536)}
}

// ctCacheTTL bounds how often a scrape walks the conntrack maps: listing
// them copies every entry and holds the datapath's lock meanwhile.
const ctCacheTTL = 15 * time.Second

// datapathSource adapts the eBPF fast path.
type datapathSource struct {
	dp         *datapath.Datapath
	uplinks    []string // from-network is attached here; from-endpoint elsewhere
	ctCapacity map[string]int

	mu      sync.Mutex
	ctAt    time.Time
	ctUsage []metrics.MapUsage
	ctErr   error
}

func (d *datapathSource) DatapathState() metrics.DatapathState {
	st := d.dp.Status()
	out := metrics.DatapathState{}
	switch {
	case st.Loaded:
		out.Mode = metrics.DatapathLoaded
	case st.Err != nil:
		out.Mode, out.Reason = metrics.DatapathFallback, "error"
		if errors.Is(st.Err, datapath.ErrUnavailable) {
			out.Reason = "unavailable"
		}
	default:
		out.Mode, out.Reason = metrics.DatapathStarting, "starting"
	}
	if st.Err != nil {
		out.Detail = st.Err.Error()
	}
	out.GCRuns, out.GCRemoved, out.GCLastDuration = st.GCRuns, st.GCRemoved, st.GCLastDuration
	for _, ifname := range st.Attached {
		if slices.Contains(d.uplinks, ifname) {
			out.Uplinks = append(out.Uplinks, ifname)
		} else {
			out.Endpoints = append(out.Endpoints, ifname)
		}
	}
	return out
}

func (d *datapathSource) DatapathCounters() ([]metrics.DatapathCounter, error) {
	cs, err := d.dp.Counters()
	out := make([]metrics.DatapathCounter, 0, len(cs))
	for _, c := range cs {
		out = append(out, metrics.DatapathCounter{Direction: c.Direction, Reason: c.Reason, Packets: c.Packets, Bytes: c.Bytes})
	}
	return out, err
}

func (d *datapathSource) MapUsage() ([]metrics.MapUsage, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctUsage != nil && time.Since(d.ctAt) < ctCacheTTL {
		return d.ctUsage, d.ctErr
	}
	entries, err := d.dp.Conntrack()
	n := map[string]int{}
	for _, e := range entries {
		if e.Proto == 6 { // TCP
			n["ct_tcp"]++
		} else {
			n["ct_other"]++
		}
	}
	var out []metrics.MapUsage
	for _, m := range []string{"ct_tcp", "ct_other"} {
		out = append(out, metrics.MapUsage{Map: m, Entries: n[m], Capacity: d.ctCapacity[m]})
	}
	d.ctAt, d.ctUsage, d.ctErr = time.Now(), out, err
	return out, err
}
