package datapath

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// loaded is what Run holds while the programs are loaded.
type loaded struct {
	objs     *objects
	attached map[string]attachment // pin path -> link held by this run
	// What applyLocked last wrote to the maps the drift guard watches.
	wantEPs   map[addrKey]epValue
	wantNode  map[addrKey]uint32
	wantPass  map[lpmKey]uint32
	wantHooks map[string]hookSpec // pin path -> hook
}

// hookSpec is one desired tcx hook.
type hookSpec struct {
	ifname  string
	ifindex int
	uplink  bool
}

// attach attaches h's program at pin, replacing the link this run held
// there, and records the new one.
func (l *loaded) attach(pin string, h hookSpec) error {
	prog := l.objs.ep.FromEndpoint
	if h.uplink {
		prog = l.objs.net.FromNetwork
	}
	if a, ok := l.attached[pin]; ok {
		a.l.Close()
		delete(l.attached, pin)
	}
	nl, err := attachTCX(prog, h.ifindex, pin)
	if err != nil {
		return err
	}
	l.attached[pin] = attachment{ifindex: h.ifindex, l: nl}
	return nil
}

func (l *loaded) close() error {
	var errs []error
	for _, a := range l.attached {
		errs = append(errs, a.l.Close()) // pinned: closing keeps it attached
	}
	errs = append(errs, l.objs.Close())
	return errors.Join(errs...)
}

// checkBPFFS verifies that the pin dir's parent is a bpffs.
func checkBPFFS(dir string) error {
	for p := dir; ; {
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err == nil {
			if st.Type != unix.BPF_FS_MAGIC {
				return fmt.Errorf("%s is not on a bpf filesystem", p)
			}
			return nil
		}
		parent := p[:max(0, lastSlash(p))]
		if parent == "" || parent == p {
			return fmt.Errorf("no bpf filesystem above %s", dir)
		}
		p = parent
	}
}

func lastSlash(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return i
		}
	}
	return -1
}

// Run loads the programs (re-using pinned maps), attaches them, and keeps
// endpoints, next hops and attachments reconciled until ctx ends. On exit
// the pins stay: the fast path keeps forwarding across a restart. A load
// failure returns an error wrapping ErrUnavailable.
func (d *Datapath) Run(ctx context.Context) error {
	l, err := d.load()
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		d.mu.Lock()
		d.status.Err = err
		d.mu.Unlock()
		return err
	}
	d.mu.Lock()
	d.impl = l
	d.status = Status{Loaded: true}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.impl = nil
		d.status.Loaded = false
		l.close()
		d.mu.Unlock()
	}()

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := watch(wctx, d.trigger); err != nil {
		d.log.Warn("netlink watch failed, relying on periodic resync", "err", err)
	}
	resync := time.NewTicker(d.cfg.ResyncInterval)
	defer resync.Stop()
	gc := time.NewTicker(d.cfg.GCInterval)
	defer gc.Stop()
	guard := time.NewTicker(d.cfg.GuardInterval)
	defer guard.Stop()

	d.reconcile(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.kick:
			d.reconcile(ctx)
		case <-resync.C:
			d.reconcile(ctx)
		case <-guard.C:
			d.guard()
		case <-gc.C:
			d.mu.Lock()
			t0 := time.Now()
			del, live, err := gcConntrack(l.objs.ep.PrCtTcp, l.objs.ep.PrCtOther)
			d.status.GCRuns++
			d.status.GCRemoved += uint64(del)
			d.status.GCLastDuration = time.Since(t0)
			d.mu.Unlock()
			if err != nil {
				d.log.Warn("conntrack gc", "err", err)
			}
			d.log.Debug("conntrack gc", "deleted", del, "live", live)
		}
	}
}

func (d *Datapath) load() (*loaded, error) {
	if err := checkBPFFS(d.cfg.PinDir); err != nil {
		return nil, err
	}
	// The programs start with the mode last set (SetKernelConntrack
	// before Run), not the one of Config.
	cfg := d.cfg
	d.mu.Lock()
	live := d.passCIDRs
	cfg.KernelConntrack = d.kctMode
	d.mu.Unlock()
	objs, err := loadObjects(cfg, loadOpts{pinDir: d.cfg.PinDir, ttlDec: 1})
	if err != nil {
		return nil, err
	}
	l := &loaded{objs: objs, attached: map[string]attachment{}}
	var errs []error
	errs = append(errs, syncHash(objs.ep.PrPassPrefixes, lpmEntries(d.cfg.PassCIDRs, live)))
	errs = append(errs, syncHash(objs.ep.PrNhPrefixes, lpmEntries(d.cfg.NextHopCIDRs)))
	if err := errors.Join(errs...); err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

// guard puts back what someone else changed since applyLocked: entries of
// the endpoint, node-address and pass-prefix maps (a map walk each, no
// netlink), and hooks detached behind the daemon's back (a link info query
// each). What it repairs is counted and logged; a new pod or address is the
// reconcile's business, not drift.
func (d *Datapath) guard() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.guardLocked()
}

// guardLocked is guard with d.mu held; applyLocked runs it first, so drift
// that a reconcile would repair anyway is still seen and counted.
func (d *Datapath) guardLocked() {
	l := d.impl
	if l == nil || l.wantEPs == nil {
		return
	}
	var errs []error
	n := 0
	repaired := func(k int, err error) {
		n += k
		errs = append(errs, err)
	}
	repaired(syncHashN(l.objs.ep.PrEndpoints, l.wantEPs))
	repaired(syncHashN(l.objs.ep.PrNodeAddrs, l.wantNode))
	repaired(syncHashN(l.objs.ep.PrPassPrefixes, l.wantPass))
	if n > 0 {
		d.status.RepairedEntries += uint64(n)
		d.log.Warn("datapath maps changed behind podrouter's back: repaired", "entries", n)
	}
	for pin, h := range l.wantHooks {
		a, ok := l.attached[pin]
		if !ok || sameHook(a.l, h.ifindex) {
			continue // not attached by an earlier pass: the reconcile retries
		}
		if err := l.attach(pin, h); err != nil {
			errs = append(errs, fmt.Errorf("re-attach %s: %w", h.ifname, err))
			continue
		}
		d.status.RepairedHooks++
		d.log.Warn("tcx program detached behind podrouter's back: attached again", "iface", h.ifname, "uplink", h.uplink)
	}
	if err := errors.Join(errs...); err != nil {
		d.log.Warn("datapath drift guard", "err", err)
	}
}

// reconcile brings maps and attachments to the desired state; failures are
// logged and retried on the next kick or resync.
func (d *Datapath) reconcile(ctx context.Context) {
	var eps []Endpoint
	if !d.cfg.DisableDiscovery {
		found, err := discoverEndpoints(ctx, d.pods(), &d.podMACs)
		if err != nil {
			d.log.Warn("endpoint discovery", "err", err)
		}
		eps = found
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.impl == nil {
		return
	}
	eps = mergeEndpoints(eps, d.explicitEPs)
	if err := d.applyLocked(eps, d.nextHops); err != nil {
		d.log.Warn("datapath reconcile incomplete", "err", err)
		d.status.Err = err
	} else {
		d.status.Err = nil
	}
}

// mergeEndpoints unions discovered and explicit endpoints; explicit wins per interface.
func mergeEndpoints(found, explicit []Endpoint) []Endpoint {
	by := map[string]Endpoint{}
	for _, e := range found {
		by[e.IfName] = e
	}
	for _, e := range explicit {
		by[e.IfName] = e
	}
	out := make([]Endpoint, 0, len(by))
	for _, e := range by {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IfName < out[j].IfName })
	return out
}

// applyLocked: map entries first, then attach new hooks, then remove stale
// entries and hooks. Keeps going after a failure and reports all of them.
func (d *Datapath) applyLocked(eps []Endpoint, nhs []NextHop) error {
	d.guardLocked()
	objs := d.impl.objs
	var errs []error

	addrs, err := nodeAddrs()
	errs = append(errs, err)
	node := map[addrKey]uint32{}
	for _, a := range append(addrs, d.cfg.NodeAddrs...) {
		node[makeAddrKey(a)] = 1
	}
	epEntries := endpointEntries(eps)
	for k := range epEntries {
		delete(node, k) // a pod address is never a node address
	}
	pass := lpmEntries(d.cfg.PassCIDRs, d.passCIDRs)
	errs = append(errs, syncHash(objs.ep.PrNodeAddrs, node))
	errs = append(errs, syncHash(objs.ep.PrPassPrefixes, pass))
	errs = append(errs, syncHash(objs.ep.PrEndpoints, epEntries))
	d.impl.wantNode, d.impl.wantPass, d.impl.wantEPs = node, pass, epEntries

	resolved, err := resolveNextHops(nhs)
	errs = append(errs, err)
	errs = append(errs, syncNextHops(objs.ep.PrNexthops, nextHopSlots(resolved)))

	// Desired hooks: uplinks get from-network, endpoint veths from-endpoint.
	want := map[string]hookSpec{}
	for _, u := range d.cfg.Uplinks {
		idx, err := ifIndex(u)
		if err != nil {
			errs = append(errs, fmt.Errorf("uplink %s: %w", u, err))
			continue
		}
		want[linkPin(d.cfg.PinDir, uplinkPrefix, u)] = hookSpec{u, idx, true}
	}
	// A pod is hooked only once its endpoint entry can be written (both
	// MACs known): a from-endpoint program forwarding a pod's requests while
	// its replies, with no endpoint entry, take the kernel path would make
	// netfilter see replies without requests (INVALID, which kube-proxy's
	// iptables mode drops). Until then both directions take the kernel path.
	for _, ep := range eps {
		if len(ep.Addrs) == 0 {
			continue
		}
		if _, ok := epEntries[makeAddrKey(ep.Addrs[0])]; !ok {
			continue
		}
		want[linkPin(d.cfg.PinDir, endpointPrefix, ep.IfName)] = hookSpec{ep.IfName, ep.IfIndex, false}
	}
	d.impl.wantHooks = want
	var attached []string
	for pin, h := range want {
		if a, ok := d.impl.attached[pin]; ok && a.ifindex == h.ifindex && sameHook(a.l, h.ifindex) {
			attached = append(attached, h.ifname)
			continue
		}
		if err := d.impl.attach(pin, h); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h.ifname, err))
			continue
		}
		attached = append(attached, h.ifname)
		d.log.Info("attached", "iface", h.ifname, "uplink", h.uplink)
	}
	// Stale hooks: held by this run, or pinned by an earlier one.
	for pin, a := range d.impl.attached {
		if _, ok := want[pin]; !ok {
			errs = append(errs, a.l.Unpin())
			a.l.Close()
			delete(d.impl.attached, pin)
		}
	}
	for _, prefix := range []string{uplinkPrefix, endpointPrefix} {
		pins, err := pinnedLinks(d.cfg.PinDir, prefix)
		errs = append(errs, err)
		for name, pin := range pins {
			if _, ok := want[pin]; !ok {
				d.log.Info("detached", "iface", name)
				errs = append(errs, detachPinned(pin))
			}
		}
	}
	sort.Strings(attached)
	d.status.Attached = attached
	return errors.Join(errs...)
}

func ifIndex(name string) (int, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return ifi.Index, nil
}

// SetEndpoints sets the explicitly managed endpoints (whole desired state,
// merged with discovered ones). Applied now when running, else at Run.
func (d *Datapath) SetEndpoints(ctx context.Context, eps []Endpoint) error {
	d.mu.Lock()
	d.explicitEPs = append([]Endpoint(nil), eps...)
	d.mu.Unlock()
	return d.applyNow(ctx)
}

// SetNextHops sets the default route's ECMP set (whole desired state).
func (d *Datapath) SetNextHops(ctx context.Context, nhs []NextHop) error {
	d.mu.Lock()
	d.nextHops = append([]NextHop(nil), nhs...)
	d.mu.Unlock()
	return d.applyNow(ctx)
}

// SetPassCIDRs sets the learned destinations handed to the kernel stack
// (e.g. the cluster's Service CIDRs from its ServiceCIDR objects): the whole
// desired set, merged with the static Config.PassCIDRs. Idempotent: the
// pass-prefix map is diffed, additions written before removals. Conntrack
// is not touched; the prefix check precedes it, so packets to an added
// prefix go to the stack from the next one on. An invalid set is refused
// whole and changes nothing. Applied now when running, else at Run.
func (d *Datapath) SetPassCIDRs(ctx context.Context, prefixes []netip.Prefix) error {
	if err := validatePrefixes(prefixes); err != nil {
		return fmt.Errorf("pass cidrs: %w", err)
	}
	if n := len(mergePrefixes(d.cfg.PassCIDRs, prefixes)); n > maxLPM {
		return fmt.Errorf("pass cidrs: %d with the configured ones, at most %d", n, maxLPM)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.passCIDRs = slices.Clone(prefixes)
	if d.impl == nil {
		return nil // applied when Run loads
	}
	want := lpmEntries(d.cfg.PassCIDRs, d.passCIDRs)
	d.impl.wantPass = want // the drift guard's reference follows the change
	return syncHash(d.impl.objs.ep.PrPassPrefixes, want)
}

// SetKernelConntrack switches, while the programs run and without a
// reload, which new flows go through the kernel stack because nf_conntrack
// knows them (the daemon moves to KernelCTAny when it finds kube-proxy in a
// mode whose translations nf_conntrack does not mark as NAT). Flows already
// in the fast path's conntrack keep their verdict until they expire.
// Applied now when running, else at Run.
func (d *Datapath) SetKernelConntrack(m KernelCTMode) error {
	if err := m.validate(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.kctMode = m
	if d.impl == nil {
		return nil // applied when Run loads
	}
	return d.impl.objs.setKernelCT(kctMode(m, false))
}

// KernelConntrack returns the mode the running programs use.
func (d *Datapath) KernelConntrack() (KernelCTMode, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.impl == nil {
		return 0, ErrNotRunning
	}
	var v uint8
	if err := d.impl.objs.ep.RunKctMode.Get(&v); err != nil {
		return 0, fmt.Errorf("read kernel conntrack mode: %w", err)
	}
	if v == uint8(fromEndpointPrKctModePR_KCT_ANY) {
		return KernelCTAny, nil
	}
	return KernelCTNAT, nil
}

// PassCIDRs returns the prefixes in the pass-to-stack map (static and
// learned), sorted.
func (d *Datapath) PassCIDRs() ([]netip.Prefix, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.impl == nil {
		return nil, ErrNotRunning
	}
	return readLPM(d.impl.objs.ep.PrPassPrefixes)
}

func (d *Datapath) applyNow(ctx context.Context) error {
	var found []Endpoint
	if !d.cfg.DisableDiscovery {
		var err error
		if found, err = discoverEndpoints(ctx, d.pods(), &d.podMACs); err != nil {
			return err
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.impl == nil {
		return nil // applied when Run loads
	}
	return d.applyLocked(mergeEndpoints(found, d.explicitEPs), d.nextHops)
}

// Counters returns the per-direction, per-reason counters summed over CPUs.
func (d *Datapath) Counters() ([]Counter, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.impl == nil {
		return nil, ErrNotRunning
	}
	return readCounters(d.impl.objs.ep.PrCounters)
}

// Conntrack lists the conntrack entries (TCP first).
func (d *Datapath) Conntrack() ([]CTEntry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.impl == nil {
		return nil, ErrNotRunning
	}
	return readConntrack(d.impl.objs.ep.PrCtTcp, d.impl.objs.ep.PrCtOther)
}

// Monitor enables tracing (events: names as in Event.Type, nil = all;
// sampleRate: 1 of N packets traced, decided once per packet so that a
// from/to pair stays whole; drops always) and calls fn for every event
// until ctx ends; tracing is switched off again on return.
func (d *Datapath) Monitor(ctx context.Context, types []string, sampleRate uint32, fn func(Event)) error {
	d.mu.Lock()
	if d.impl == nil {
		d.mu.Unlock()
		return ErrNotRunning
	}
	objs := d.impl.objs
	d.mu.Unlock()
	var mask uint32
	for i, n := range eventTypeNames {
		if n != "" && (types == nil || contains(types, n)) {
			mask |= 1 << i
		}
	}
	rd, err := ringbuf.NewReader(objs.ep.PrEvents)
	if err != nil {
		return fmt.Errorf("open ring buffer: %w", err)
	}
	defer rd.Close()
	zero := uint32(0)
	if err := objs.ep.PrTraceSettings.Put(&zero, &traceCfg{Enabled: mask, SampleRate: sampleRate}); err != nil {
		return fmt.Errorf("enable tracing: %w", err)
	}
	defer objs.ep.PrTraceSettings.Put(&zero, &traceCfg{}) //nolint:errcheck // best effort: tracing off
	go func() { <-ctx.Done(); rd.Close() }()
	for {
		rec, err := rd.Read()
		if err != nil {
			if errors.Is(err, os.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		if ev, err := decodeEvent(rec.RawSample); err == nil {
			fn(ev)
		}
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
