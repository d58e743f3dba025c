package routes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	socketTimeout = 5 * time.Second
	dumpAttempts  = 10
)

// Installer owns podrouter's default routes in one network namespace.
type Installer struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex // serialises kernel access and guards the fields below
	h       *netlink.Handle
	ns      netns.NsHandle // open only when cfg.NetNSPath != ""
	fams    map[Family]*famState
	counter counters

	// watched holds the link indices of the installed next hops, for Run's
	// carrier poll; written under mu, read without it.
	watched atomic.Pointer[[]int]
}

// famState is what the Installer remembers per family between calls.
type famState struct {
	applied  []NextHop // what we last left in the kernel; nil when none
	haveApp  bool      // applied is meaningful (we wrote or verified it)
	foreign  bool      // a foreign default was present at the last call
	blocking bool      // and it sat at our key
	lastLink map[netip.Addr]int
}

type counters struct {
	installs, removals, driftMissing, driftChanged, foreignSeen atomic.Uint64
	writes, writeErrors, dumpsInterrupted, resubscriptions      atomic.Uint64
}

// New validates cfg (zero fields take their defaults) and returns an
// Installer. It does no I/O: the netlink socket opens on first use.
func New(cfg Config, logger *slog.Logger) (*Installer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("routes config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Installer{
		cfg:  cfg,
		log:  logger,
		ns:   netns.None(),
		fams: map[Family]*famState{FamilyV4: {lastLink: map[netip.Addr]int{}}, FamilyV6: {lastLink: map[netip.Addr]int{}}},
	}, nil
}

// Config returns the configuration in effect, defaults applied.
func (i *Installer) Config() Config { return i.cfg }

// Stats returns a snapshot of the counters.
func (i *Installer) Stats() Stats {
	c := &i.counter
	return Stats{
		Installs: c.installs.Load(), Removals: c.removals.Load(),
		DriftMissing: c.driftMissing.Load(), DriftChanged: c.driftChanged.Load(),
		ForeignSeen: c.foreignSeen.Load(), Writes: c.writes.Load(), WriteErrors: c.writeErrors.Load(),
		DumpsInterrupted: c.dumpsInterrupted.Load(), Resubscriptions: c.resubscriptions.Load(),
	}
}

// Close releases the netlink socket and namespace handle. Routes stay.
func (i *Installer) Close() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.h != nil {
		i.h.Close()
		i.h = nil
	}
	if i.ns.IsOpen() {
		err := i.ns.Close()
		i.ns = netns.None()
		if err != nil {
			return fmt.Errorf("close netns handle: %w", err)
		}
	}
	return nil
}

// openLocked opens the namespace and netlink handle on first use.
func (i *Installer) openLocked() error {
	if i.h != nil {
		return nil
	}
	if i.cfg.NetNSPath != "" && !i.ns.IsOpen() {
		ns, err := netns.GetFromPath(i.cfg.NetNSPath)
		if err != nil {
			return fmt.Errorf("open netns %s: %w", i.cfg.NetNSPath, err)
		}
		i.ns = ns
	}
	var h *netlink.Handle
	var err error
	if i.ns.IsOpen() {
		h, err = netlink.NewHandleAt(i.ns, unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		return fmt.Errorf("open netlink socket: %w", err)
	}
	if err := h.SetSocketTimeout(socketTimeout); err != nil {
		h.Close()
		return fmt.Errorf("set netlink socket timeout: %w", err)
	}
	i.h = h
	return nil
}

// dump runs f until it completes without NLM_F_DUMP_INTR. Partial results
// returned together with ErrDumpInterrupted are thrown away.
func dump[T any](ctx context.Context, i *Installer, what string, f func() (T, error)) (T, error) {
	var zero T
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return zero, fmt.Errorf("%s: %w", what, err)
		}
		v, err := f()
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return zero, fmt.Errorf("%s: %w", what, err)
		}
		i.counter.dumpsInterrupted.Add(1)
		if attempt == dumpAttempts {
			return zero, fmt.Errorf("%s: interrupted %d times: %w", what, attempt, err)
		}
		time.Sleep(time.Duration(attempt) * time.Millisecond)
	}
}

// snapshotLocked reads links and every route of fam.
func (i *Installer) snapshotLocked(ctx context.Context, fam Family) (*snapshot, error) {
	if err := i.openLocked(); err != nil {
		return nil, err
	}
	links, err := dump(ctx, i, "list links", i.h.LinkList)
	if err != nil {
		return nil, err
	}
	routes, err := dump(ctx, i, "list "+fam.String()+" routes", func() ([]netlink.Route, error) {
		// Table filter with RT_TABLE_UNSPEC: every table, not just main.
		return i.h.RouteListFiltered(nlFamily(fam), &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, err
	}
	return newSnapshot(fam, links, routes), nil
}

func (i *Installer) loadAddrsLocked(ctx context.Context, s *snapshot) error {
	addrs, err := dump(ctx, i, "list "+s.fam.String()+" addresses", func() ([]netlink.Addr, error) {
		return i.h.AddrList(nil, nlFamily(s.fam))
	})
	if addrs == nil {
		addrs = []netlink.Addr{} // tried: do not dump again for the next gateway
	}
	s.addrs = addrs
	return err
}

// SetDefault makes podrouter's default route for fam hold exactly the usable
// next hops among gateways: one route, multipath when there are several,
// none when there are none. It writes nothing when the kernel already
// matches. It never touches a default route without podrouter's protocol;
// when one sits at podrouter's (table, metric) ours is not installed and
// Result.ForeignBlocking is set. On a write error it goes on with the rest
// and reports the state reached with the joined errors.
func (i *Installer) SetDefault(ctx context.Context, fam Family, gateways []netip.Addr) (Result, error) {
	if !fam.valid() {
		return Result{}, fmt.Errorf("set default: invalid family %d", int(fam))
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	st := i.fams[fam]
	log := i.log.With("family", fam.String())

	s, err := i.snapshotLocked(ctx, fam)
	if err != nil {
		return Result{}, fmt.Errorf("set %v default: %w", fam, err)
	}
	var res Result
	cands, skipped := normalizeGateways(fam, gateways)
	res.Skipped = skipped
	var want []NextHop
	lastLink := make(map[netip.Addr]int, len(cands)) // only for gateways still asked for
	for _, gw := range cands {
		last := st.lastLink[gw.WithZone("")]
		nh, skip := resolve(s, i.cfg.Table, gw, last)
		if skip != nil && skip.Reason == ReasonNotConnected && s.addrs == nil {
			// Look at addresses for a better reason, once per call.
			if err := i.loadAddrsLocked(ctx, s); err == nil {
				nh, skip = resolve(s, i.cfg.Table, gw, last)
			}
		}
		if skip != nil {
			lastLink[gw.WithZone("")] = last
			res.Skipped = append(res.Skipped, *skip)
			continue
		}
		lastLink[gw.WithZone("")] = nh.LinkIndex
		want = append(want, nh)
	}
	st.lastLink = lastLink
	want = dedupeHops(want)

	d := classify(s, i.cfg)
	res.ForeignPresent = len(d.foreignAtKey)+len(d.foreignOther) > 0
	res.ForeignBlocking = len(d.foreignAtKey) > 0
	i.noteForeignLocked(log, st, s, d, res)

	cur := i.currentHops(s, d.oursAtKey)
	i.noteDriftLocked(log, st, cur)

	var errs []error
	installed := cur
	switch {
	case res.ForeignBlocking:
		// Hands off the key; whatever of ours sits there stays as it is.
	case matches(d.oursAtKey, s, want):
		// Nothing to do.
	case len(want) == 0:
		if err := i.deleteAllLocked(fam, d.oursAtKey); err != nil {
			errs = append(errs, err)
		} else {
			installed = nil
			log.Info("default route removed", "skipped", skippedStrings(res.Skipped))
		}
		res.Changed = true
	default:
		err := i.installLocked(fam, d.oursAtKey, want)
		res.Changed = true
		if err != nil {
			errs = append(errs, err)
		} else {
			installed = want
			i.counter.installs.Add(1)
			log.Info("default route installed", "nexthops", hopStrings(want), "skipped", skippedStrings(res.Skipped))
		}
	}
	// Add before delete: only now remove our routes at other keys.
	if len(d.strays) > 0 {
		res.Changed = true
		if err := i.deleteAllLocked(fam, d.strays); err != nil {
			errs = append(errs, err)
		}
	}
	res.Installed = dedupeHops(installed)
	st.applied, st.haveApp = res.Installed, true
	i.updateWatchedLocked()
	if len(errs) > 0 {
		// Unsure what the kernel holds: do not call the next difference drift.
		st.haveApp = false
	}
	return res, errors.Join(errs...)
}

// updateWatchedLocked publishes the links of our installed next hops.
func (i *Installer) updateWatchedLocked() {
	var links []int
	for _, st := range i.fams {
		for _, h := range st.applied {
			links = append(links, h.LinkIndex)
		}
	}
	slices.Sort(links)
	links = slices.Compact(links)
	i.watched.Store(&links)
}

// currentHops returns the next hops of our route(s) at the key.
func (i *Installer) currentHops(s *snapshot, ours []netlink.Route) []NextHop {
	var out []NextHop
	for _, r := range ours {
		hops, _ := hopsOf(r, s) // a malformed route of ours shows what it can
		out = append(out, plainHops(hops)...)
	}
	return dedupeHops(out)
}

func (i *Installer) noteForeignLocked(log *slog.Logger, st *famState, s *snapshot, d defaults, res Result) {
	if res.ForeignPresent && !st.foreign {
		i.counter.foreignSeen.Add(1)
		for _, r := range slices.Concat(d.foreignAtKey, d.foreignOther) {
			log.Info("foreign default route present", "route", describe(r, s), "table", r.Table, "metric", r.Priority, "protocol", int(r.Protocol))
		}
	}
	if res.ForeignBlocking && !st.blocking {
		for _, r := range d.foreignAtKey {
			log.Warn("foreign default route blocks ours", "route", describe(r, s), "table", r.Table, "metric", r.Priority, "protocol", int(r.Protocol))
		}
	}
	if !res.ForeignBlocking && st.blocking {
		log.Info("foreign default route no longer blocks ours")
	}
	st.foreign, st.blocking = res.ForeignPresent, res.ForeignBlocking
}

// noteDriftLocked counts a difference between what we left in the kernel and
// what is there now. The kernel itself drops a next hop whose link goes
// down; that shows up here as drift too.
func (i *Installer) noteDriftLocked(log *slog.Logger, st *famState, cur []NextHop) {
	if !st.haveApp || sameHops(st.applied, cur) {
		return
	}
	switch {
	case len(st.applied) > 0 && len(cur) == 0:
		i.counter.driftMissing.Add(1)
		log.Warn("default route drift", "kind", "missing", "want", hopStrings(st.applied))
	default:
		i.counter.driftChanged.Add(1)
		log.Warn("default route drift", "kind", "changed", "want", hopStrings(st.applied), "have", hopStrings(cur))
	}
}

// routeFor builds podrouter's default route holding hops.
func (i *Installer) routeFor(fam Family, hops []NextHop) *netlink.Route {
	r := &netlink.Route{
		Family:   nlFamily(fam),
		Dst:      defaultDst(fam),
		Table:    i.cfg.Table,
		Priority: i.cfg.Metric,
		Protocol: netlink.RouteProtocol(i.cfg.Protocol),
		Type:     unix.RTN_UNICAST,
		Scope:    netlink.SCOPE_UNIVERSE,
	}
	if len(hops) == 1 {
		r.Gw = net.IP(hops[0].Gateway.WithZone("").AsSlice())
		r.LinkIndex = hops[0].LinkIndex
		return r
	}
	for _, h := range hops {
		r.MultiPath = append(r.MultiPath, &netlink.NexthopInfo{
			Gw:        net.IP(h.Gateway.WithZone("").AsSlice()),
			LinkIndex: h.LinkIndex,
		})
	}
	return r
}

func defaultDst(fam Family) *net.IPNet {
	if fam == FamilyV4 {
		return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	}
	return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
}

// installLocked writes want at our key: a create-exclusive add when none of
// ours is there (it fails rather than touch anything that appeared
// meanwhile), a replace when ours is. For IPv6 a replace swaps all
// siblings of a multipath route at once. Several IPv4 routes of ours at the
// key (aliases added with append) are deleted first.
func (i *Installer) installLocked(fam Family, ours []netlink.Route, want []NextHop) error {
	r := i.routeFor(fam, want)
	if len(ours) > 1 && fam == FamilyV4 {
		if err := i.deleteAllLocked(fam, ours); err != nil {
			return err
		}
		ours = nil
	}
	i.counter.writes.Add(1)
	if len(ours) == 0 {
		if err := i.h.RouteAdd(r); err != nil {
			i.counter.writeErrors.Add(1)
			return fmt.Errorf("add %v default via %v: %w", fam, hopStrings(want), err)
		}
		return nil
	}
	if err := i.h.RouteReplace(r); err != nil {
		i.counter.writeErrors.Add(1)
		return fmt.Errorf("replace %v default via %v: %w", fam, hopStrings(want), err)
	}
	return nil
}

// deleteAllLocked deletes the given routes of ours. The delete request names
// our protocol, so the kernel cannot match a foreign route with it. Without
// a next hop in the request the kernel deletes the whole route (for IPv6,
// all of its multipath siblings).
func (i *Installer) deleteAllLocked(fam Family, rs []netlink.Route) error {
	var errs []error
	for _, r := range rs {
		del := &netlink.Route{
			Family:   nlFamily(fam),
			Dst:      defaultDst(fam),
			Table:    r.Table,
			Priority: r.Priority,
			Tos:      r.Tos,
			Protocol: netlink.RouteProtocol(i.cfg.Protocol),
		}
		i.counter.writes.Add(1)
		err := i.h.RouteDel(del)
		switch {
		case err == nil:
			i.counter.removals.Add(1)
		case errors.Is(err, unix.ESRCH), errors.Is(err, unix.ENOENT):
			// Already gone (IPv6 siblings go with the first delete).
		default:
			i.counter.writeErrors.Add(1)
			errs = append(errs, fmt.Errorf("delete %v default table %d metric %d: %w", fam, r.Table, r.Priority, err))
		}
	}
	return errors.Join(errs...)
}

// Current returns the next hops of podrouter's default route for fam at its
// (table, metric), as the kernel holds them now (next hops the kernel marks
// dead included).
func (i *Installer) Current(ctx context.Context, fam Family) ([]NextHop, error) {
	if !fam.valid() {
		return nil, fmt.Errorf("current default: invalid family %d", int(fam))
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	s, err := i.snapshotLocked(ctx, fam)
	if err != nil {
		return nil, fmt.Errorf("current %v default: %w", fam, err)
	}
	return i.currentHops(s, classify(s, i.cfg).oursAtKey), nil
}

// RemoveAll deletes every default route carrying podrouter's protocol, both
// families, any table and metric. Foreign routes are not touched.
func (i *Installer) RemoveAll(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	var errs []error
	for _, fam := range []Family{FamilyV4, FamilyV6} {
		s, err := i.snapshotLocked(ctx, fam)
		if err != nil {
			errs = append(errs, fmt.Errorf("remove %v defaults: %w", fam, err))
			continue
		}
		var ours []netlink.Route
		for _, r := range s.routes {
			if isOwnDefault(r, fam, i.cfg.Protocol) {
				ours = append(ours, r)
			}
		}
		st := i.fams[fam]
		st.applied, st.haveApp = nil, false
		i.updateWatchedLocked()
		if len(ours) == 0 {
			continue
		}
		if err := i.deleteAllLocked(fam, ours); err != nil {
			errs = append(errs, err)
			continue
		}
		i.log.Info("default route removed", "family", fam.String(), "routes", len(ours))
	}
	return errors.Join(errs...)
}

// describe renders a route for logs.
func describe(r netlink.Route, s *snapshot) string {
	hops, ok := hopsOf(r, s)
	if !ok || len(hops) == 0 {
		return r.String()
	}
	return fmt.Sprint(hopStrings(plainHops(hops)))
}
