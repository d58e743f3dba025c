package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/podrouter/podrouter/routes"
)

// NodeState is everything the agent derives desired state from that does
// not come from BGP: who we are and which pod CIDRs we own.
type NodeState struct {
	Name     string
	PodCIDRs []netip.Prefix
	// Drained withdraws the pod CIDRs while keeping sessions and routes.
	Drained bool
}

// Speaker is the BGP side as the agent needs it (*bgp.Speaker).
type Speaker interface {
	// SetAdvertisements makes the originated prefixes exactly these.
	SetAdvertisements(ctx context.Context, prefixes []netip.Prefix) error
	// SetDrained drains (or undrains) them; level triggered.
	SetDrained(ctx context.Context, drained bool) error
	// Defaults returns the next hops of the default routes peers offer.
	Defaults(ctx context.Context) (v4, v6 []netip.Addr, err error)
}

// RouteInstaller owns podrouter's routes in the kernel (*routes.Installer).
type RouteInstaller interface {
	SetDefault(ctx context.Context, fam routes.Family, gateways []netip.Addr) (routes.Result, error)
	// Current returns the next hops of podrouter's default route now in the kernel.
	Current(ctx context.Context, fam routes.Family) ([]routes.NextHop, error)
	// SetBlackholes makes podrouter's blackhole routes exactly prefixes
	// (the node's pod CIDRs: unassigned pod addresses are dropped at the
	// node instead of looping between node and ToR).
	SetBlackholes(ctx context.Context, prefixes []netip.Prefix) (changed bool, err error)
}

// Datapath is the eBPF fast path as the agent needs it: it is told the
// node's pod CIDRs (where its endpoints are) on every pass, and the
// default route's installed next hops (both families, whole set) after
// every reconcile of the routes.
type Datapath interface {
	SetPodCIDRs(ctx context.Context, prefixes []netip.Prefix) error
	SetNextHops(ctx context.Context, nhs []routes.NextHop) error
}

// Families are the address families the agent keeps a default route for.
var Families = []routes.Family{routes.FamilyV4, routes.FamilyV6}

// Config tunes the loop.
type Config struct {
	// Resync is the period of the safety-net reconcile.
	Resync time.Duration
	// StartupHold: after start, while no peer offers a default for a
	// family, keep the default route the previous instance left in the
	// kernel (graceful restart) instead of removing it, for this long.
	// Only that route: once a peer has offered a default of a family, the
	// hold is over for it, and a withdrawal removes the route at once.
	StartupHold time.Duration
}

// Status is the outcome of the last reconcile, for status and readiness.
type Status struct {
	At       time.Time
	Duration time.Duration
	Err      string
	// PeersOnly: every problem of the pass (Err) was in reading what the
	// peers offer; the configuration itself was applied.
	PeersOnly  bool
	Node       NodeState
	Advertised []netip.Prefix
	Learned    map[routes.Family][]netip.Addr
	Routes     map[routes.Family]routes.Result
	Holding    map[routes.Family]bool // startup hold kept an existing route
	NextHops   []routes.NextHop       // given to the datapath (nil without one)
	Reconciles uint64
	Errors     uint64
}

// errPeers marks a problem with what the peers offer (Status.PeersOnly).
type errPeers struct{ error }

func (e errPeers) Unwrap() error { return e.error }

// Agent runs the reconcile loop.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	speaker Speaker
	routes  RouteInstaller
	dp      Datapath // nil: no fast path
	kick    chan struct{}
	holdSet chan struct{} // Hold asks Run to re-arm its hold timer

	mu     sync.Mutex
	node   NodeState
	haveNS bool
	// holdUntil: the kernel's default routes are kept until then while no
	// peer offers one (startup hold, Hold), for the families in held:
	// those no peer has offered a default for since the hold began (the
	// route in the kernel is the previous instance's, or the one from
	// before a BGP server restart).
	holdUntil time.Time
	held      map[routes.Family]bool
	// pinned: a HoldDuring is running: offers seen meanwhile come from the
	// sessions about to go (the BGP server is restarting) and do not end
	// the hold.
	pinned int
	status Status
}

// New builds an agent; it does no I/O. dp may be nil (no fast path).
func New(cfg Config, logger *slog.Logger, speaker Speaker, routes RouteInstaller, dp Datapath) (*Agent, error) {
	if speaker == nil || routes == nil {
		return nil, errors.New("agent needs a speaker and a route installer")
	}
	if cfg.Resync <= 0 {
		return nil, fmt.Errorf("resync interval %s: must be positive", cfg.Resync)
	}
	return &Agent{
		cfg: cfg, log: logger, speaker: speaker, routes: routes, dp: dp,
		kick: make(chan struct{}, 1), holdSet: make(chan struct{}, 1),
	}, nil
}

// Kick asks for a reconcile soon. It never blocks; kicks coalesce.
func (a *Agent) Kick() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// SetNodeState replaces the node state and kicks the loop.
func (a *Agent) SetNodeState(ns NodeState) {
	a.mu.Lock()
	a.node = NodeState{Name: ns.Name, PodCIDRs: slices.Clone(ns.PodCIDRs), Drained: ns.Drained}
	a.haveNS = true
	a.mu.Unlock()
	a.Kick()
}

// Status returns the last reconcile's outcome.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status
}

// Hold keeps the default routes now in the kernel for d while no peer
// offers a default (like the startup hold), for example while the BGP
// server restarts with a new local ASN. It never shortens a running hold.
func (a *Agent) Hold(d time.Duration) {
	a.mu.Lock()
	if until := time.Now().Add(d); until.After(a.holdUntil) {
		a.holdUntil = until
	}
	a.held = map[routes.Family]bool{}
	for _, f := range Families {
		a.held[f] = true
	}
	a.mu.Unlock()
	select {
	case a.holdSet <- struct{}{}:
	default:
	}
	a.log.Info("holding the kernel's default routes while sessions come back", "for", d)
}

// HoldDuring holds like Hold while fn runs and from its end on: for a BGP
// server restart (a new local ASN or router ID), whose old sessions may
// still offer defaults until they are torn down. Offers seen while fn runs
// do not end the hold; once it returned, the new sessions' offers do.
func (a *Agent) HoldDuring(d time.Duration, fn func()) {
	a.mu.Lock()
	a.pinned++
	a.mu.Unlock()
	a.Hold(d)
	defer func() {
		a.mu.Lock()
		a.pinned--
		a.mu.Unlock()
		a.Hold(d) // re-armed for every family: the old sessions' offers are gone
	}()
	fn()
}

// Run reconciles on every kick and every resync period until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	a.Hold(a.cfg.StartupHold)
	t := time.NewTicker(a.cfg.Resync)
	defer t.Stop()
	// A hold ending must be noticed even if nothing else happens.
	hold := time.NewTimer(a.cfg.StartupHold)
	defer hold.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.kick:
		case <-t.C:
		case <-hold.C:
		case <-a.holdSet:
			a.mu.Lock()
			hold.Reset(time.Until(a.holdUntil))
			a.mu.Unlock()
		}
		a.reconcile(ctx)
	}
}

// ReconcileOnce runs one pass now (tests, drain).
func (a *Agent) ReconcileOnce(ctx context.Context) Status {
	a.reconcile(ctx)
	return a.Status()
}

func (a *Agent) reconcile(ctx context.Context) {
	start := time.Now()
	a.mu.Lock()
	node, haveNS, holdUntil := a.node, a.haveNS, a.holdUntil
	held, pinned := maps.Clone(a.held), a.pinned > 0
	a.mu.Unlock()
	st := Status{
		At: start, Node: node,
		Learned: map[routes.Family][]netip.Addr{}, Routes: map[routes.Family]routes.Result{}, Holding: map[routes.Family]bool{},
	}
	var errs []error

	// BGP: advertise the pod CIDRs (depreferred or nothing while drained),
	// and the datapath finds its endpoints inside them.
	if haveNS {
		if err := a.speaker.SetDrained(ctx, node.Drained); err != nil {
			errs = append(errs, fmt.Errorf("drain: %w", err))
		}
		if err := a.speaker.SetAdvertisements(ctx, node.PodCIDRs); err != nil {
			errs = append(errs, fmt.Errorf("advertise pod cidrs: %w", err))
		}
		if !node.Drained {
			st.Advertised = slices.Clone(node.PodCIDRs)
		}
		if _, err := a.routes.SetBlackholes(ctx, node.PodCIDRs); err != nil {
			errs = append(errs, fmt.Errorf("pod cidr blackholes: %w", err))
		}
		if a.dp != nil {
			if err := a.dp.SetPodCIDRs(ctx, node.PodCIDRs); err != nil {
				errs = append(errs, fmt.Errorf("datapath pod cidrs: %w", err))
			}
		}
	}

	// Routes: one default per family, ECMP over every offering peer.
	v4, v6, err := a.speaker.Defaults(ctx)
	if err != nil {
		errs = append(errs, errPeers{fmt.Errorf("read learned defaults: %w", err)})
	} else {
		inHold := time.Now().Before(holdUntil)
		for fam, gws := range map[routes.Family][]netip.Addr{routes.FamilyV4: v4, routes.FamilyV6: v6} {
			st.Learned[fam] = gws
			if len(gws) > 0 && held[fam] && !pinned {
				// A peer offers a default again: whatever the kernel holds
				// from now on is this instance's own, not to be held.
				a.mu.Lock()
				delete(a.held, fam)
				a.mu.Unlock()
			}
			if len(gws) == 0 && inHold && held[fam] {
				cur, err := a.routes.Current(ctx, fam)
				if err != nil {
					errs = append(errs, fmt.Errorf("read %s default: %w", fam, err))
					continue
				}
				if len(cur) > 0 {
					st.Holding[fam] = true
					st.Routes[fam] = routes.Result{Installed: cur}
					continue
				}
			}
			res, err := a.routes.SetDefault(ctx, fam, gws)
			st.Routes[fam] = res
			if err != nil {
				errs = append(errs, fmt.Errorf("%s default route: %w", fam, err))
			}
		}
		// Datapath: the next hops actually installed, after the routes.
		if a.dp != nil {
			st.NextHops = installedNextHops(st.Routes)
			if err := a.dp.SetNextHops(ctx, st.NextHops); err != nil {
				errs = append(errs, fmt.Errorf("datapath next hops: %w", err))
			}
		}
	}

	st.Duration = time.Since(start)
	a.mu.Lock()
	st.Reconciles = a.status.Reconciles + 1
	st.Errors = a.status.Errors
	if err := errors.Join(errs...); err != nil {
		st.Err = err.Error()
		st.Errors++
		st.PeersOnly = !slices.ContainsFunc(errs, func(e error) bool { var p errPeers; return !errors.As(e, &p) })
		a.log.Error("reconcile failed", "err", err)
	}
	a.status = st
	a.mu.Unlock()
}

// installedNextHops lists the installed next hops, IPv4 first, in the
// installer's order.
func installedNextHops(rs map[routes.Family]routes.Result) []routes.NextHop {
	out := []routes.NextHop{}
	for _, fam := range Families {
		out = append(out, rs[fam].Installed...)
	}
	return out
}
