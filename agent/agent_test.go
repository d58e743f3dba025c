package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podrouter/podrouter/routes"
)

// fakeSpeaker records what it was told and offers scripted defaults.
type fakeSpeaker struct {
	mu         sync.Mutex
	t          *testing.T
	advertised []netip.Prefix
	drained    bool
	v4, v6     []netip.Addr
}

func (f *fakeSpeaker) SetAdvertisements(_ context.Context, ps []netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range ps {
		if p.Bits() == 0 {
			f.t.Errorf("agent asked to advertise a default route %s", p)
		}
	}
	if f.drained {
		ps = nil
	}
	f.advertised = slices.Clone(ps)
	return nil
}
func (f *fakeSpeaker) SetDrained(_ context.Context, drained bool) error {
	f.mu.Lock()
	f.drained = drained
	if drained {
		f.advertised = nil
	}
	f.mu.Unlock()
	return nil
}
func (f *fakeSpeaker) Defaults(context.Context) ([]netip.Addr, []netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.v4), slices.Clone(f.v6), nil
}

// fakeRoutes is a kernel with one podrouter default per family.
type fakeRoutes struct {
	mu         sync.Mutex
	t          *testing.T
	kernel     map[routes.Family][]netip.Addr
	blackholes []netip.Prefix
	writes     int
	// failBlackholes fails SetBlackholes.
	failBlackholes error
}

func (f *fakeRoutes) SetDefault(_ context.Context, fam routes.Family, gws []netip.Addr) (routes.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fam != routes.FamilyV4 && fam != routes.FamilyV6 {
		f.t.Errorf("bad family %d", fam)
	}
	for _, g := range gws {
		if g.Is4() != (fam == routes.FamilyV4) {
			f.t.Errorf("gateway %s given for family %d", g, fam)
		}
	}
	res := routes.Result{}
	for _, g := range gws {
		res.Installed = append(res.Installed, routes.NextHop{Gateway: g, Link: linkOf(g)})
	}
	if !slices.Equal(f.kernel[fam], gws) {
		f.writes++
		f.kernel[fam] = slices.Clone(gws)
		res.Changed = true
	}
	return res, nil
}
func (f *fakeRoutes) SetBlackholes(_ context.Context, ps []netip.Prefix) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failBlackholes != nil {
		return false, f.failBlackholes
	}
	changed := !slices.Equal(f.blackholes, ps)
	f.blackholes = slices.Clone(ps)
	return changed, nil
}

func (f *fakeRoutes) Current(_ context.Context, fam routes.Family) ([]routes.NextHop, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []routes.NextHop
	for _, g := range f.kernel[fam] {
		out = append(out, routes.NextHop{Gateway: g, Link: linkOf(g)})
	}
	return out, nil
}

// linkOf is the fake kernel's interface towards a gateway.
func linkOf(g netip.Addr) string { return "if-" + g.String() }

// fakeDatapath records the pod CIDRs and next hops it was given.
type fakeDatapath struct {
	mu    sync.Mutex
	t     *testing.T
	pods  []netip.Prefix
	nhs   []routes.NextHop
	calls int
}

func (f *fakeDatapath) SetPodCIDRs(_ context.Context, ps []netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pods = slices.Clone(ps)
	return nil
}

func (f *fakeDatapath) SetNextHops(_ context.Context, nhs []routes.NextHop) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, nh := range nhs {
		if !nh.Gateway.IsValid() || nh.Link == "" {
			f.t.Errorf("datapath given an incomplete next hop %+v", nh)
		}
	}
	f.nhs = slices.Clone(nhs)
	f.calls++
	return nil
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func newTestAgent(t *testing.T, hold time.Duration) (*Agent, *fakeSpeaker, *fakeRoutes) {
	sp := &fakeSpeaker{t: t}
	rt := &fakeRoutes{t: t, kernel: map[routes.Family][]netip.Addr{}}
	a, err := New(Config{Resync: time.Hour, StartupHold: hold}, slog.New(slog.NewTextHandler(io.Discard, nil)), sp, rt, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Hold(hold)
	return a, sp, rt
}

// TestDefaultsFollowLearned walks learned default sets, then replays them in
// random order: the kernel must always equal the last learned set.
func TestDefaultsFollowLearned(t *testing.T) {
	steps := []struct{ v4, v6 []netip.Addr }{
		{addrs("192.168.1.0"), addrs("fd00:1:1::1")},
		{addrs("192.168.1.0", "192.168.2.0"), addrs("fd00:1:1::1", "fd00:2:1::1")},
		{addrs("192.168.2.0"), nil},
		{nil, nil},
		{addrs("192.168.1.0", "192.168.2.0"), addrs("fd00:2:1::1")},
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	order := make([]int, 0, 3*len(steps))
	for i := range steps {
		order = append(order, i)
	}
	for range 2 * len(steps) {
		order = append(order, r.IntN(len(steps)))
	}
	a, sp, rt := newTestAgent(t, 0)
	ctx := context.Background()
	a.SetNodeState(NodeState{Name: "n1", PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.1.0/24")}})
	for _, i := range order {
		sp.v4, sp.v6 = steps[i].v4, steps[i].v6
		st := a.ReconcileOnce(ctx)
		if st.Err != "" {
			t.Fatalf("step %d: %s", i, st.Err)
		}
		if !slices.Equal(rt.kernel[routes.FamilyV4], steps[i].v4) || !slices.Equal(rt.kernel[routes.FamilyV6], steps[i].v6) {
			t.Fatalf("step %d: kernel v4 %v v6 %v, want %v %v", i, rt.kernel[routes.FamilyV4], rt.kernel[routes.FamilyV6], steps[i].v4, steps[i].v6)
		}
	}
	writes := rt.writes
	a.ReconcileOnce(ctx)
	if rt.writes != writes {
		t.Errorf("an unchanged reconcile wrote routes (%d -> %d)", writes, rt.writes)
	}
	if !slices.Equal(sp.advertised, []netip.Prefix{netip.MustParsePrefix("10.0.1.0/24")}) {
		t.Errorf("advertised %v", sp.advertised)
	}
}

// TestStartupHold: a route left by the previous instance survives while no
// peer offers a default during the hold, and goes after it.
func TestStartupHold(t *testing.T) {
	a, sp, rt := newTestAgent(t, time.Hour)
	rt.kernel[routes.FamilyV4] = addrs("192.168.1.0")
	ctx := context.Background()
	st := a.ReconcileOnce(ctx)
	if !st.Holding[routes.FamilyV4] || !slices.Equal(rt.kernel[routes.FamilyV4], addrs("192.168.1.0")) {
		t.Fatalf("hold did not keep the route: %+v kernel %v", st, rt.kernel)
	}
	sp.v4 = addrs("192.168.2.0")
	a.ReconcileOnce(ctx)
	if !slices.Equal(rt.kernel[routes.FamilyV4], addrs("192.168.2.0")) {
		t.Fatalf("learned default not installed during hold: %v", rt.kernel[routes.FamilyV4])
	}
	sp.v4 = nil
	a.holdUntil = time.Now().Add(-time.Second) // hold over
	a.ReconcileOnce(ctx)
	if len(rt.kernel[routes.FamilyV4]) != 0 {
		t.Fatalf("route kept after hold with no peer offering a default: %v", rt.kernel[routes.FamilyV4])
	}

	// Hold (a BGP server restart) keeps a route again while no peer offers one.
	sp.v4 = addrs("192.168.3.0")
	a.ReconcileOnce(ctx)
	sp.v4 = nil
	a.Hold(time.Hour)
	if st := a.ReconcileOnce(ctx); !st.Holding[routes.FamilyV4] || !slices.Equal(rt.kernel[routes.FamilyV4], addrs("192.168.3.0")) {
		t.Fatalf("Hold did not keep the route: %+v kernel %v", st, rt.kernel)
	}
}

// TestStartupHoldOnlyThePreviousRoute: once a peer has offered a default
// of a family, the hold is over for that family: the ToR withdrawing it
// removes the route at once, even inside the hold; the other family is
// still held. Hold (a BGP server restart) holds both again.
func TestStartupHoldOnlyThePreviousRoute(t *testing.T) {
	a, sp, rt := newTestAgent(t, time.Hour)
	rt.kernel[routes.FamilyV4] = addrs("192.168.1.0") // the previous instance's
	rt.kernel[routes.FamilyV6] = addrs("fd00:1:1::1")
	ctx := context.Background()
	sp.v4 = addrs("192.168.1.0")
	a.ReconcileOnce(ctx)
	sp.v4 = nil // the ToR withdraws the v4 default
	st := a.ReconcileOnce(ctx)
	if len(rt.kernel[routes.FamilyV4]) != 0 || st.Holding[routes.FamilyV4] {
		t.Fatalf("a default learned by this instance was held after its withdrawal: %v", rt.kernel[routes.FamilyV4])
	}
	if !st.Holding[routes.FamilyV6] || !slices.Equal(rt.kernel[routes.FamilyV6], addrs("fd00:1:1::1")) {
		t.Fatalf("the previous instance's v6 default not held: %+v %v", st.Holding, rt.kernel[routes.FamilyV6])
	}
	sp.v4 = addrs("192.168.2.0")
	a.ReconcileOnce(ctx)
	sp.v4 = nil
	a.Hold(time.Hour)
	if st := a.ReconcileOnce(ctx); !st.Holding[routes.FamilyV4] || !slices.Equal(rt.kernel[routes.FamilyV4], addrs("192.168.2.0")) {
		t.Fatalf("Hold after a server restart did not keep the route: %+v %v", st.Holding, rt.kernel[routes.FamilyV4])
	}
}

// TestHoldDuringServerRestart: a BGP server restart (new local ASN): the
// old sessions still offer the default while the restart begins, which
// must not end the hold; once they are gone the route stays until the new
// sessions offer one (the rack-label e2e saw the route go without this).
func TestHoldDuringServerRestart(t *testing.T) {
	a, sp, rt := newTestAgent(t, time.Hour)
	ctx := context.Background()
	sp.v4 = addrs("192.168.1.0")
	a.ReconcileOnce(ctx) // this instance's own route, the startup hold over for v4
	a.HoldDuring(time.Hour, func() {
		a.ReconcileOnce(ctx) // the old server still offers it
		sp.v4 = nil          // torn down
		if st := a.ReconcileOnce(ctx); !st.Holding[routes.FamilyV4] || len(rt.kernel[routes.FamilyV4]) == 0 {
			t.Errorf("during the restart: route not held: %+v %v", st.Holding, rt.kernel[routes.FamilyV4])
		}
	})
	if st := a.ReconcileOnce(ctx); !st.Holding[routes.FamilyV4] || !slices.Equal(rt.kernel[routes.FamilyV4], addrs("192.168.1.0")) {
		t.Fatalf("after the restart, no session yet: route not held: %+v %v", st.Holding, rt.kernel[routes.FamilyV4])
	}
	sp.v4 = addrs("192.168.1.0") // the new session offers it: the hold is over
	a.ReconcileOnce(ctx)
	sp.v4 = nil // and withdrawn: gone at once
	if st := a.ReconcileOnce(ctx); st.Holding[routes.FamilyV4] || len(rt.kernel[routes.FamilyV4]) != 0 {
		t.Fatalf("withdrawn by the new session: still held: %+v %v", st.Holding, rt.kernel[routes.FamilyV4])
	}
}

// TestDatapathFollowsInstalled: after every reconcile the datapath holds
// exactly the installed next hops of both families, with their links,
// including the route kept by the startup hold.
func TestDatapathFollowsInstalled(t *testing.T) {
	a, sp, rt := newTestAgent(t, time.Hour)
	dp := &fakeDatapath{t: t}
	a.dp = dp
	ctx := context.Background()
	render := func(nhs []routes.NextHop) string {
		var b []string
		for _, nh := range nhs {
			b = append(b, nh.Gateway.String()+"@"+nh.Link)
		}
		return strings.Join(b, " ")
	}
	rt.kernel[routes.FamilyV4] = addrs("192.168.1.0") // left by the previous instance
	a.ReconcileOnce(ctx)
	if got, want := render(dp.nhs), "192.168.1.0@if-192.168.1.0"; got != want {
		t.Fatalf("during hold: datapath %q, want %q", got, want)
	}
	steps := []struct {
		v4, v6 []netip.Addr
		want   string
	}{
		{addrs("192.168.1.0", "192.168.2.0"), addrs("fd00:1:1::1"), "192.168.1.0@if-192.168.1.0 192.168.2.0@if-192.168.2.0 fd00:1:1::1@if-fd00:1:1::1"},
		{nil, addrs("fd00:1:1::1", "fd00:2:1::1"), "fd00:1:1::1@if-fd00:1:1::1 fd00:2:1::1@if-fd00:2:1::1"},
		{nil, nil, ""},
	}
	a.holdUntil = time.Now().Add(-time.Second) // hold over
	for i, s := range steps {
		sp.v4, sp.v6 = s.v4, s.v6
		st := a.ReconcileOnce(ctx)
		if got := render(dp.nhs); got != s.want {
			t.Errorf("step %d: datapath %q, want %q", i, got, s.want)
		}
		if render(st.NextHops) != s.want {
			t.Errorf("step %d: status next hops %q", i, render(st.NextHops))
		}
	}
}

func TestDrainUndrain(t *testing.T) {
	a, sp, _ := newTestAgent(t, 0)
	ctx := context.Background()
	pods := []netip.Prefix{netip.MustParsePrefix("10.0.1.0/24")}
	a.SetNodeState(NodeState{Name: "n1", PodCIDRs: pods, Drained: true})
	a.ReconcileOnce(ctx)
	if len(sp.advertised) != 0 {
		t.Fatalf("drained node advertises %v", sp.advertised)
	}
	a.SetNodeState(NodeState{Name: "n1", PodCIDRs: pods})
	a.ReconcileOnce(ctx)
	if !slices.Equal(sp.advertised, pods) {
		t.Fatalf("undrained node advertises %v", sp.advertised)
	}
}

func TestKickCoalesces(t *testing.T) {
	a, _, _ := newTestAgent(t, 0)
	for range 100 {
		a.Kick() // must never block
	}
	if len(a.kick) != 1 {
		t.Fatalf("kick channel holds %d", len(a.kick))
	}
}

// TestLatePodCIDRs: pod CIDRs that arrive after start (Kubernetes assigns
// spec.podCIDRs later) reach the speaker, the blackholes and the datapath
// on the next pass, as do later changes; nothing is frozen at boot.
func TestLatePodCIDRs(t *testing.T) {
	a, sp, rt := newTestAgent(t, 0)
	dp := &fakeDatapath{t: t}
	a.dp = dp
	ctx := context.Background()
	a.SetNodeState(NodeState{Name: "n1"})
	a.ReconcileOnce(ctx)
	if len(sp.advertised) != 0 || len(dp.pods) != 0 || len(rt.blackholes) != 0 {
		t.Fatalf("no pod CIDRs yet, but advertised %v, datapath %v, blackholes %v", sp.advertised, dp.pods, rt.blackholes)
	}
	for _, pods := range [][]netip.Prefix{
		{netip.MustParsePrefix("10.0.1.0/24")},
		{netip.MustParsePrefix("10.0.1.0/24"), netip.MustParsePrefix("fd00:10:0:1::/64")},
	} {
		a.SetNodeState(NodeState{Name: "n1", PodCIDRs: pods})
		st := a.ReconcileOnce(ctx)
		if !slices.Equal(sp.advertised, pods) || !slices.Equal(dp.pods, pods) || !slices.Equal(rt.blackholes, pods) || !slices.Equal(st.Node.PodCIDRs, pods) {
			t.Errorf("pod CIDRs %v: advertised %v, datapath %v, blackholes %v, status %v", pods, sp.advertised, dp.pods, rt.blackholes, st.Node.PodCIDRs)
		}
	}
}

// failingDefaults is a speaker whose peers cannot be read.
type failingDefaults struct{ *fakeSpeaker }

func (failingDefaults) Defaults(context.Context) ([]netip.Addr, []netip.Addr, error) {
	return nil, nil, errors.New("bgp speaker not running")
}

// TestPeersOnlyError: a pass that failed only in reading what the peers
// offer says so in a typed field, not in its message.
func TestPeersOnlyError(t *testing.T) {
	_, sp, rt := newTestAgent(t, 0)
	a, err := New(Config{Resync: time.Hour}, slog.New(slog.DiscardHandler), failingDefaults{sp}, rt, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.SetNodeState(NodeState{Name: "n1", PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.1.0/24")}})
	if st := a.ReconcileOnce(context.Background()); st.Err == "" || !st.PeersOnly {
		t.Errorf("peer-only failure: err %q peersOnly %v", st.Err, st.PeersOnly)
	}
	rt.failBlackholes = errors.New("netlink: boom")
	if st := a.ReconcileOnce(context.Background()); !strings.Contains(st.Err, "boom") || st.PeersOnly {
		t.Errorf("failure applying the config: err %q peersOnly %v", st.Err, st.PeersOnly)
	}
}
