package routes

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

var families = []Family{FamilyV4, FamilyV6}

func TestSetDefaultSingleAndMultipath(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.String(), func(t *testing.T) {
			tn := newTestNet(t, 2)

			res := tn.set(fam, gws(fam, 1))
			if !res.Changed || len(res.Installed) != 1 || res.Installed[0].Link != "up1" || len(res.Skipped) != 0 {
				t.Fatalf("one gateway: %+v", res)
			}
			tn.wantRender(fam, "default proto 201 metric 20 via G1 dev up1")
			rs := tn.nlDefaults(fam)
			if len(rs) != 1 || int(rs[0].Protocol) != 201 || rs[0].Priority != 20 || len(rs[0].MultiPath) != 0 ||
				!rs[0].Gw.Equal(gw(fam, 1).AsSlice()) {
				t.Fatalf("netlink view of one gateway: %+v", rs)
			}

			res = tn.set(fam, gws(fam, 2, 1))
			if !res.Changed || len(res.Installed) != 2 {
				t.Fatalf("two gateways: %+v", res)
			}
			tn.wantRender(fam, "default proto 201 metric 20 nexthop via G1 dev up1 nexthop via G2 dev up2")
			rs = tn.nlDefaults(fam)
			if len(rs) != 1 || int(rs[0].Protocol) != 201 || rs[0].Priority != 20 || len(rs[0].MultiPath) != 2 {
				t.Fatalf("netlink view of two gateways: %+v", rs)
			}
			cur, err := tn.inst.Current(context.Background(), fam)
			if err != nil || !sameHops(cur, res.Installed) {
				t.Fatalf("Current = %v, %v; want %v", cur, err, res.Installed)
			}

			// Idempotence: same set, other order, duplicates, mapped form.
			writes := tn.inst.Stats().Writes
			in := append(gws(fam, 1, 2, 2), gws(fam, 1)...)
			for range 3 {
				if res := tn.set(fam, in); res.Changed || len(res.Installed) != 2 {
					t.Fatalf("repeat: %+v", res)
				}
			}
			if got := tn.inst.Stats().Writes; got != writes {
				t.Fatalf("repeated SetDefault wrote to the kernel: writes %d -> %d", writes, got)
			}

			res = tn.set(fam, nil)
			if !res.Changed || len(res.Installed) != 0 {
				t.Fatalf("empty: %+v", res)
			}
			tn.wantRender(fam, "")
			if err := tn.inst.RemoveAll(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSetDefaultStates walks desired gateway sets, then replays them in a
// seeded random order, comparing `ip route` after each step.
func TestSetDefaultStates(t *testing.T) {
	steps := []struct {
		in   []int // gateway numbers
		want string
	}{
		{nil, ""},
		{[]int{1}, "default proto 201 metric 20 via G1 dev up1"},
		{[]int{1, 2}, "default proto 201 metric 20 nexthop via G1 dev up1 nexthop via G2 dev up2"},
		{[]int{3, 1, 2}, "default proto 201 metric 20 nexthop via G1 dev up1 nexthop via G2 dev up2 nexthop via G3 dev up3"},
		{[]int{2, 3}, "default proto 201 metric 20 nexthop via G2 dev up2 nexthop via G3 dev up3"},
		{[]int{3}, "default proto 201 metric 20 via G3 dev up3"},
		{[]int{1, 3}, "default proto 201 metric 20 nexthop via G1 dev up1 nexthop via G3 dev up3"},
		{[]int{}, ""},
		{[]int{2}, "default proto 201 metric 20 via G2 dev up2"},
		{[]int{1, 2, 3, 3}, "default proto 201 metric 20 nexthop via G1 dev up1 nexthop via G2 dev up2 nexthop via G3 dev up3"},
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("ROUTES_TEST_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("replay seed %d (ROUTES_TEST_SEED=%d to repeat)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	order := make([]int, 0, 3*len(steps))
	for i := range steps {
		order = append(order, i)
	}
	for range 2 {
		order = append(order, rng.Perm(len(steps))...)
	}
	for _, fam := range families {
		t.Run(fam.String(), func(t *testing.T) {
			tn := newTestNet(t, 3)
			prev := ""
			for n, i := range order {
				st := steps[i]
				res := tn.set(fam, gws(fam, st.in...))
				got, want := tn.render(fam), expand(fam, st.want)
				if got != want {
					t.Fatalf("step %d (state %d, in %v):\ngot:\n%s\nwant:\n%s", n, i, st.in, got, want)
				}
				if res.Changed != (want != prev) {
					t.Fatalf("step %d (state %d): Changed=%v, but the rendering went from %q to %q", n, i, res.Changed, prev, want)
				}
				if len(res.Skipped) != 0 {
					t.Fatalf("step %d: skipped %v", n, res.Skipped)
				}
				prev = want
			}
		})
	}
}

// A hand-placed default (static, no podrouter protocol) is never touched;
// at podrouter's own metric it blocks podrouter's route.
func TestForeignDefault(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.String(), func(t *testing.T) {
			tn := newTestNet(t, 2)
			ctx := context.Background()
			tn.ip(famFlag(fam), "route", "add", "default", "via", gw(fam, 1).String())
			foreign := "default proto boot metric 0 via G1 dev up1"
			if fam == FamilyV6 {
				foreign = "default proto boot metric 1024 via G1 dev up1" // IPv6's metric 0 means 1024
			}

			res := tn.set(fam, gws(fam, 1, 2))
			if !res.ForeignPresent || res.ForeignBlocking || !res.Changed || len(res.Installed) != 2 || res.Err() != nil {
				t.Fatalf("foreign at another metric: %+v", res)
			}
			tn.wantRender(fam, "default proto 201 metric 20 nexthop via G1 dev up1 nexthop via G2 dev up2\n"+foreign)
			if res := tn.set(fam, gws(fam, 2)); !res.ForeignPresent || !res.Changed {
				t.Fatalf("shrink beside foreign: %+v", res)
			}
			tn.wantRender(fam, "default proto 201 metric 20 via G2 dev up2\n"+foreign)
			if err := tn.inst.RemoveAll(ctx); err != nil {
				t.Fatal(err)
			}
			tn.wantRender(fam, foreign)

			// A foreign default at our (table, metric).
			tn.ip(famFlag(fam), "route", "add", "default", "via", gw(fam, 2).String(), "metric", "20")
			blocked := foreign + "\ndefault proto boot metric 20 via G2 dev up2"
			tn.wantRender(fam, blocked)
			writes := tn.inst.Stats().Writes
			for range 2 {
				res = tn.set(fam, gws(fam, 1, 2))
				if !res.ForeignPresent || !res.ForeignBlocking || res.Changed || len(res.Installed) != 0 ||
					!errors.Is(res.Err(), ErrForeignDefault) {
					t.Fatalf("foreign at our metric: %+v", res)
				}
			}
			if got := tn.inst.Stats().Writes; got != writes {
				t.Fatalf("blocked SetDefault wrote: writes %d -> %d", writes, got)
			}
			tn.wantRender(fam, blocked)
			if res := tn.set(fam, nil); res.Changed || !res.ForeignBlocking {
				t.Fatalf("empty while blocked: %+v", res)
			}
			if err := tn.inst.RemoveAll(ctx); err != nil {
				t.Fatal(err)
			}
			tn.wantRender(fam, blocked)

			// The blocker goes: ours comes in.
			tn.ip(famFlag(fam), "route", "del", "default", "via", gw(fam, 2).String(), "metric", "20")
			res = tn.set(fam, gws(fam, 1))
			if res.ForeignBlocking || !res.ForeignPresent || !res.Changed {
				t.Fatalf("after blocker removed: %+v", res)
			}
			tn.wantRender(fam, "default proto 201 metric 20 via G1 dev up1\n"+foreign)
			if err := tn.inst.RemoveAll(ctx); err != nil {
				t.Fatal(err)
			}
			tn.wantRender(fam, foreign)
		})
	}
}

// Our routes at another metric or table (an older config) are strays:
// SetDefault removes them after installing, RemoveAll removes them all.
func TestStrayRoutes(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.String(), func(t *testing.T) {
			tn := newTestNet(t, 2)
			tn.ip(famFlag(fam), "route", "add", "default", "via", gw(fam, 1).String(), "proto", "201", "metric", "50")
			tn.ip(famFlag(fam), "route", "add", "default", "via", gw(fam, 1).String(), "proto", "201", "table", "100")
			res := tn.set(fam, gws(fam, 2))
			if !res.Changed || len(res.Installed) != 1 || res.ForeignPresent {
				t.Fatalf("%+v", res)
			}
			tn.wantRender(fam, "default proto 201 metric 20 via G2 dev up2")
			if out := tn.ip(famFlag(fam), "route", "show", "table", "100"); strings.TrimSpace(out) != "" {
				t.Fatalf("stray in table 100 left: %s", out)
			}
			tn.ip(famFlag(fam), "route", "add", "default", "via", gw(fam, 1).String(), "proto", "201", "table", "100")
			if err := tn.inst.RemoveAll(context.Background()); err != nil {
				t.Fatal(err)
			}
			tn.wantRender(fam, "")
			if out := tn.ip(famFlag(fam), "route", "show", "table", "100"); strings.TrimSpace(out) != "" {
				t.Fatalf("RemoveAll left table 100: %s", out)
			}
		})
	}
}

func TestNotDirectlyConnected(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.String(), func(t *testing.T) {
			tn := newTestNet(t, 2)
			far, behind, local := "10.99.0.1", "10.50.0.1", "10.1.0.2"
			if fam == FamilyV6 {
				far, behind, local = "2001:db8:99::1", "2001:db8:50::1", "2001:db8:1::2"
			}
			// behind is reachable, but only through router 1.
			tn.ip(famFlag(fam), "route", "add", strings.TrimSuffix(behind, "1")+"0/"+map[Family]string{FamilyV4: "24", FamilyV6: "64"}[fam], "via", gw(fam, 1).String())
			in := append(gws(fam, 1), netip.MustParseAddr(far), netip.MustParseAddr(behind), netip.MustParseAddr(local))
			res := tn.set(fam, in)
			if len(res.Installed) != 1 || res.Installed[0].Gateway != gw(fam, 1) {
				t.Fatalf("installed %v", res.Installed)
			}
			want := map[string]string{far: ReasonNotConnected, behind: ReasonNotConnected, local: ReasonLocal}
			if len(res.Skipped) != len(want) {
				t.Fatalf("skipped %v", res.Skipped)
			}
			for _, s := range res.Skipped {
				if want[s.Gateway.String()] != s.Reason {
					t.Errorf("skipped %v: reason %q, want %q", s.Gateway, s.Reason, want[s.Gateway.String()])
				}
			}
			tn.wantRender(fam, "default proto 201 metric 20 via G1 dev up1")
		})
	}
}

// An IPv6 link-local next hop (what BGP unnumbered peers offer) needs its
// link as zone.
func TestLinkLocalGateway(t *testing.T) {
	tn := newTestNet(t, 2)
	var ll string
	for _, f := range strings.Fields(tn.ipr("-6", "-o", "addr", "show", "dev", "dn2", "scope", "link")) {
		if strings.HasPrefix(f, "fe80::") {
			ll = strings.TrimSuffix(f, "/64")
		}
	}
	if ll == "" {
		t.Fatal("router has no link-local address on dn2")
	}
	zoned := netip.MustParseAddr(ll + "%up2")
	res := tn.set(FamilyV6, []netip.Addr{zoned, gw(FamilyV6, 1), netip.MustParseAddr(ll)})
	if len(res.Installed) != 2 || len(res.Skipped) != 1 || res.Skipped[0].Reason != ReasonNotConnected {
		t.Fatalf("%+v", res)
	}
	tn.wantRender(FamilyV6, fmt.Sprintf("default proto 201 metric 20 nexthop via G1 dev up1 nexthop via %s dev up2", ll))
	if res := tn.set(FamilyV6, []netip.Addr{gw(FamilyV6, 1), zoned}); res.Changed {
		t.Fatalf("repeat with zone changed: %+v", res)
	}
	if res := tn.set(FamilyV6, []netip.Addr{netip.MustParseAddr(ll + "%nosuch")}); len(res.Installed) != 0 ||
		len(res.Skipped) != 1 || res.Skipped[0].Reason != ReasonNoLink {
		t.Fatalf("unknown zone: %+v", res)
	}
}

// A next hop whose link is down on our side, or whose peer is down (our
// side NO-CARRIER), leaves the route and comes back with the link.
func TestLinkDown(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.String(), func(t *testing.T) {
			tn := newTestNet(t, 2)
			both := "default proto 201 metric 20 nexthop via G1 dev up1 nexthop via G2 dev up2"
			tn.set(fam, gws(fam, 1, 2))
			tn.wantRender(fam, both)

			for _, c := range []struct {
				name         string
				down, up     func()
				reason       string
				restoreAddr6 bool
			}{
				{"our side down", func() { tn.ip("link", "set", "dev", "up2", "down") }, func() { tn.ip("link", "set", "dev", "up2", "up") }, ReasonLinkDown, true},
				{"peer down", func() { tn.ipr("link", "set", "dev", "dn2", "down") }, func() { tn.ipr("link", "set", "dev", "dn2", "up") }, ReasonNoCarrier, false},
			} {
				c.down()
				res := tn.set(fam, gws(fam, 1, 2))
				if len(res.Installed) != 1 || len(res.Skipped) != 1 || res.Skipped[0].Gateway != gw(fam, 2) ||
					res.Skipped[0].Reason != c.reason || res.Skipped[0].Link != "up2" {
					t.Fatalf("%s: %+v", c.name, res)
				}
				t.Logf("%s: skipped %v", c.name, res.Skipped)
				tn.wantRender(fam, "default proto 201 metric 20 via G1 dev up1")
				c.up()
				waitOperUp(t, tn.node, "up2")
				if fam == FamilyV6 && c.restoreAddr6 {
					// A link set down loses its IPv6 addresses (keep_addr_on_down=0).
					tn.ip("-6", "addr", "replace", "2001:db8:2::2/64", "dev", "up2", "nodad")
				}
				if res := tn.set(fam, gws(fam, 1, 2)); len(res.Installed) != 2 || !res.Changed {
					t.Fatalf("%s, back up: %+v", c.name, res)
				}
				tn.wantRender(fam, both)
			}

			// All links down: our route goes, nothing foreign appears.
			tn.ip("link", "set", "dev", "up1", "down")
			tn.ipr("link", "set", "dev", "dn2", "down")
			res := tn.set(fam, gws(fam, 1, 2))
			if len(res.Installed) != 0 || len(res.Skipped) != 2 {
				t.Fatalf("all down: %+v", res)
			}
			tn.wantRender(fam, "")
		})
	}
}
