// Package agent turns the node's state into desired state for the
// actuators (BGP speaker, kernel routes, datapath) in one reconcile loop.
// Event sources only kick the loop; each pass pulls fresh state and
// recomputes everything, and a periodic resync is the safety net.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// NodeState is everything the agent derives desired state from that does
// not come from BGP: who we are and which pod CIDRs we own.
type NodeState struct {
	Name     string
	PodCIDRs []netip.Prefix
	// Drained withdraws the pod CIDRs while keeping sessions and routes.
	Drained bool
}

// Speaker is the BGP side as the agent needs it.
type Speaker interface {
	SetAdvertisements(ctx context.Context, prefixes []netip.Prefix) error
	Drain(ctx context.Context) error
	Undrain(ctx context.Context) error
	// Defaults returns the next hops of the default routes peers offer.
	Defaults(ctx context.Context) (v4, v6 []netip.Addr, err error)
}

// Family is an IP family for the route installer.
type Family int

// Families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// NextHop is one installed next hop of the default route.
type NextHop struct {
	Gateway netip.Addr
	Link    string // interface name
}

// DefaultResult is what the installer reached for one family.
type DefaultResult struct {
	Installed       []netip.Addr
	Links           []string // Links[i] is the interface of Installed[i]
	Skipped         []string // "gateway: reason"
	ForeignPresent  bool     // a default route podrouter did not install exists
	ForeignBlocking bool     // ...at our key, so ours is not installed
	Changed         bool
}

// RouteInstaller owns podrouter's default routes in the kernel.
type RouteInstaller interface {
	SetDefault(ctx context.Context, fam Family, gateways []netip.Addr) (DefaultResult, error)
	// Current returns the next hops of podrouter's default route now in the kernel.
	Current(ctx context.Context, fam Family) ([]NextHop, error)
	// SetBlackholes makes podrouter's blackhole routes exactly prefixes
	// (the node's pod CIDRs: unassigned pod addresses are dropped at the
	// node instead of looping between node and ToR).
	SetBlackholes(ctx context.Context, prefixes []netip.Prefix) (changed bool, err error)
}

// Datapath is the eBPF fast path as the agent needs it: it is told the
// default route's installed next hops (both families, whole set) after
// every reconcile of the routes.
type Datapath interface {
	SetNextHops(ctx context.Context, nhs []NextHop) error
}

// Config tunes the loop.
type Config struct {
	// Resync is the period of the safety-net reconcile.
	Resync time.Duration
	// StartupHold: after start, while no peer offers a default for a
	// family, keep the default route the previous instance left in the
	// kernel (graceful restart) instead of removing it, for this long.
	StartupHold time.Duration
}

// Status is the outcome of the last reconcile, for status and readiness.
type Status struct {
	At         time.Time
	Duration   time.Duration
	Err        string
	Node       NodeState
	Advertised []netip.Prefix
	Learned    map[Family][]netip.Addr
	Routes     map[Family]DefaultResult
	Holding    map[Family]bool // startup hold kept an existing route
	NextHops   []NextHop       // given to the datapath (nil without one)
	Reconciles uint64
	Errors     uint64
}

// Agent runs the reconcile loop.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	speaker Speaker
	routes  RouteInstaller
	dp      Datapath // nil: no fast path
	kick    chan struct{}
	holdSet chan struct{} // Hold asks Run to re-arm its hold timer

	mu      sync.Mutex
	node    NodeState
	haveNS  bool
	drained bool // what the speaker was last told
	// holdUntil: the kernel's default routes are kept until then while no
	// peer offers one (startup hold, Hold).
	holdUntil time.Time
	status    Status
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
	a.mu.Unlock()
	select {
	case a.holdSet <- struct{}{}:
	default:
	}
	a.log.Info("holding the kernel's default routes while sessions come back", "for", d)
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
	node, haveNS, wasDrained, holdUntil := a.node, a.haveNS, a.drained, a.holdUntil
	a.mu.Unlock()
	st := Status{
		At: start, Node: node,
		Learned: map[Family][]netip.Addr{}, Routes: map[Family]DefaultResult{}, Holding: map[Family]bool{},
	}
	var errs []error

	// BGP: advertise the pod CIDRs (or nothing while drained).
	if haveNS {
		if node.Drained != wasDrained {
			var err error
			if node.Drained {
				err = a.speaker.Drain(ctx)
				a.log.Info("node drained: pod CIDRs withdrawn")
			} else {
				err = a.speaker.Undrain(ctx)
				a.log.Info("node undrained: pod CIDRs advertised")
			}
			if err != nil {
				errs = append(errs, err)
			} else {
				a.mu.Lock()
				a.drained = node.Drained
				a.mu.Unlock()
			}
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
	}

	// Routes: one default per family, ECMP over every offering peer.
	v4, v6, err := a.speaker.Defaults(ctx)
	if err != nil {
		errs = append(errs, fmt.Errorf("read learned defaults: %w", err))
	} else {
		inHold := time.Now().Before(holdUntil)
		for fam, gws := range map[Family][]netip.Addr{IPv4: v4, IPv6: v6} {
			st.Learned[fam] = gws
			if len(gws) == 0 && inHold {
				cur, err := a.routes.Current(ctx, fam)
				if err != nil {
					errs = append(errs, fmt.Errorf("read ipv%d default: %w", fam, err))
					continue
				}
				if len(cur) > 0 {
					st.Holding[fam] = true
					res := DefaultResult{}
					for _, nh := range cur {
						res.Installed = append(res.Installed, nh.Gateway)
						res.Links = append(res.Links, nh.Link)
					}
					st.Routes[fam] = res
					continue
				}
			}
			res, err := a.routes.SetDefault(ctx, fam, gws)
			st.Routes[fam] = res
			if err != nil {
				errs = append(errs, fmt.Errorf("ipv%d default route: %w", fam, err))
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
		a.log.Error("reconcile failed", "err", err)
	}
	a.status = st
	a.mu.Unlock()
}

// installedNextHops lists the installed next hops, IPv4 first, in the
// installer's order.
func installedNextHops(routes map[Family]DefaultResult) []NextHop {
	out := []NextHop{}
	for _, fam := range []Family{IPv4, IPv6} {
		res := routes[fam]
		for i, gw := range res.Installed {
			nh := NextHop{Gateway: gw}
			if i < len(res.Links) {
				nh.Link = res.Links[i]
			}
			out = append(out, nh)
		}
	}
	return out
}
