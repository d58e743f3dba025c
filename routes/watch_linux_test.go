package routes

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

const kickBudget = 100 * time.Millisecond

// Run kicks within kickBudget of a link going down or up, on our side or
// the peer's. The changes are made with netlink from the test process, so
// the figure is the kernel's and Run's share, not ip's fork and exec.
func TestRunKicksOnLinkChange(t *testing.T) {
	tn := newTestNet(t, 2)
	k := newKicker()
	tn.startRun(k)
	tn.set(FamilyV4, gws(FamilyV4, 1, 2)) // next hops on both links
	node, router := tn.handle(tn.node), tn.handle(tn.router)

	setLink := func(h *netlink.Handle, name string, up bool) func() error {
		return func() error {
			l, err := h.LinkByName(name)
			if err != nil {
				return err
			}
			if up {
				return h.LinkSetUp(l)
			}
			return h.LinkSetDown(l)
		}
	}
	changes := []struct {
		name string
		do   func() error
	}{
		{"up2 down", setLink(node, "up2", false)},
		{"up2 up", setLink(node, "up2", true)},
		{"peer dn1 down (up1 no carrier)", setLink(router, "dn1", false)},
		{"peer dn1 up", setLink(router, "dn1", true)},
	}
	var worst time.Duration
	for round := range 5 {
		for _, c := range changes {
			time.Sleep(30 * time.Millisecond) // let the previous change's events pass
			k.drain()
			start := time.Now()
			if err := c.do(); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			lat := k.wait(t, start, 2*time.Second).Sub(start)
			t.Logf("round %d, %s: kicked after %v", round, c.name, lat)
			worst = max(worst, lat)
			if lat > kickBudget {
				t.Errorf("%s: kick after %v, budget %v", c.name, lat, kickBudget)
			}
		}
	}
	t.Logf("worst kick latency %v", worst)
}

// End to end with a minimal reconcile loop (kick -> SetDefault): the next
// hop of a link set down leaves the kernel route within kickBudget.
func TestLinkDownEndToEnd(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.String(), func(t *testing.T) {
			tn := newTestNet(t, 2)
			k := newKicker()
			tn.startRun(k)
			in := gws(fam, 1, 2)
			tn.set(fam, in)
			tn.wantRender(fam, "default proto 201 metric 20 nexthop via G1 dev up1 nexthop via G2 dev up2")

			type outcome struct {
				at   time.Time
				hops []NextHop
			}
			results := make(chan outcome, 64)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { // the agent's loop in miniature
				defer wg.Done()
				for {
					select {
					case <-ctx.Done():
						return
					case <-k.c:
					}
					res, err := tn.inst.SetDefault(ctx, fam, in)
					if err != nil && ctx.Err() == nil {
						t.Errorf("reconcile: %v", err)
					}
					results <- outcome{time.Now(), res.Installed}
				}
			}()
			t.Cleanup(func() { cancel(); wg.Wait() })

			time.Sleep(50 * time.Millisecond)
			for len(results) > 0 {
				<-results
			}
			start := time.Now()
			tn.ipr("link", "set", "dev", "dn2", "down") // our up2 loses carrier
			deadline := time.After(2 * time.Second)
			for {
				select {
				case o := <-results:
					if len(o.hops) != 1 || o.hops[0].Link != "up1" {
						continue
					}
					lat := o.at.Sub(start)
					t.Logf("next hop on up2 left the kernel route %v after the peer link went down", lat)
					if lat > kickBudget {
						t.Errorf("took %v, budget %v", lat, kickBudget)
					}
					tn.wantRender(fam, "default proto 201 metric 20 via G1 dev up1")
					return
				case <-deadline:
					t.Fatalf("route still %q 2s after link down", tn.render(fam))
				}
			}
		})
	}
}

// Someone deletes or rewrites our route: Run kicks, SetDefault repairs it
// and counts the drift.
func TestDriftRepair(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.String(), func(t *testing.T) {
			tn := newTestNet(t, 2)
			k := newKicker()
			tn.startRun(k)
			in := gws(fam, 1, 2)
			both := "default proto 201 metric 20 nexthop via G1 dev up1 nexthop via G2 dev up2"
			tn.set(fam, in)
			tn.wantRender(fam, both)

			time.Sleep(20 * time.Millisecond)
			k.drain()
			start := time.Now()
			tn.ip(famFlag(fam), "route", "del", "default", "proto", "201", "metric", "20")
			t.Logf("deleted route: kick after %v", k.wait(t, start, 2*time.Second).Sub(start))
			tn.wantRender(fam, "")
			res := tn.set(fam, in)
			if !res.Changed || len(res.Installed) != 2 {
				t.Fatalf("repair missing: %+v", res)
			}
			tn.wantRender(fam, both)
			if s := tn.inst.Stats(); s.DriftMissing != 1 || s.DriftChanged != 0 {
				t.Fatalf("stats after missing: %+v", s)
			}

			time.Sleep(20 * time.Millisecond)
			k.drain()
			start = time.Now()
			tn.ip(famFlag(fam), "route", "replace", "default", "via", gw(fam, 1).String(), "dev", "up1", "proto", "201", "metric", "20")
			t.Logf("rewritten route: kick after %v", k.wait(t, start, 2*time.Second).Sub(start))
			res = tn.set(fam, in)
			if !res.Changed || len(res.Installed) != 2 {
				t.Fatalf("repair changed: %+v", res)
			}
			tn.wantRender(fam, both)
			if s := tn.inst.Stats(); s.DriftMissing != 1 || s.DriftChanged != 1 {
				t.Fatalf("stats after changed: %+v", s)
			}
			if res := tn.set(fam, in); res.Changed {
				t.Fatalf("after repair: %+v", res)
			}

			// A foreign default appearing kicks too.
			time.Sleep(20 * time.Millisecond)
			k.drain()
			start = time.Now()
			tn.ip(famFlag(fam), "route", "add", "default", "via", gw(fam, 2).String(), "metric", "5")
			t.Logf("foreign default added: kick after %v", k.wait(t, start, 2*time.Second).Sub(start))
			if res := tn.set(fam, in); !res.ForeignPresent || res.ForeignBlocking || res.Changed {
				t.Fatalf("foreign beside ours: %+v", res)
			}
			if s := tn.inst.Stats(); s.ForeignSeen != 1 {
				t.Fatalf("ForeignSeen = %d", s.ForeignSeen)
			}
		})
	}
}

// Cancelling Run returns promptly (no goroutine stuck sending updates).
func TestRunStops(t *testing.T) {
	tn := newTestNet(t, 1)
	k := newKicker()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tn.inst.Run(ctx, k) }()
	k.wait(t, time.Time{}, 5*time.Second)
	for _, s := range []string{"down", "up", "down", "up"} {
		tn.ip("link", "set", "dev", "up1", s)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if s := tn.inst.Stats(); s.Resubscriptions != 0 {
		t.Fatalf("resubscribed: %+v", s)
	}
}
