package resilience

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/podrouter/podrouter/health"
	"github.com/podrouter/podrouter/lab"
)

// nextHopsVia counts node n's IPv4 and IPv6 podrouter defaults that have a
// next hop out of dev.
func nextHopsVia(l *lab.Lab, n int, dev string) int {
	c := 0
	for _, f := range []lab.Family{lab.IPv4, lab.IPv6} {
		rs, err := l.KernelRoutes(context.Background(), l.NodeNS(n), f, "default", "proto", "201")
		if err != nil {
			return -1
		}
		for _, r := range rs {
			if r.Dev == dev {
				c++
			}
			for _, nh := range r.Nexthops {
				if nh.Dev == dev {
					c++
				}
			}
		}
	}
	return c
}

const silentTable = "podrouter_resilience_silent"

func nftIn(ns, script string) error {
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %v\n%s", ns, err, out)
	}
	return nil
}

// silentToR makes ToR 1 drop everything on its side of node n's link
// (carrier up), and returns when node n's defaults lost the next hop
// towards it and the longest pod-traffic loss of four flows from node n's
// pods to the other nodes' pods at 100 packets/s.
func silentToR(t *testing.T, l *lab.Lab, n int) (detect, loss time.Duration) {
	t.Helper()
	ctx := context.Background()
	if v := nextHopsVia(l, n, "up1"); v != 2 {
		t.Fatalf("node%d: %d of 2 defaults via up1 before the failure", n, v)
	}
	var pings []*pinger
	for _, other := range []int{1, 2, 3} {
		if other == n || other > l.Spec.Nodes {
			continue
		}
		for p := 1; p <= l.Spec.PodsPerNode; p++ {
			dst, err := l.PodIP(ctx, other, p, lab.IPv4)
			if err != nil {
				t.Fatal(err)
			}
			pings = append(pings, startPing(t, l, l.PodNS(n, 1+(p-1)%l.Spec.PodsPerNode), dst))
		}
	}
	time.Sleep(500 * time.Millisecond)
	drop := fmt.Sprintf(`table inet %[1]s {
	chain drop_in { type filter hook input priority raw; iifname %[2]q drop; }
	chain drop_out { type filter hook output priority raw; oifname %[2]q drop; }
	chain drop_fwd { type filter hook forward priority raw; iifname %[2]q drop; oifname %[2]q drop; }
}
`, silentTable, fmt.Sprintf("n%d", n))
	t.Cleanup(func() { _ = nftIn(l.ToRNS(1), "delete table inet "+silentTable+"\n") })
	start := time.Now()
	if err := nftIn(l.ToRNS(1), drop); err != nil {
		t.Fatal(err)
	}
	detect = -1
	for time.Since(start) < 30*time.Second {
		if nextHopsVia(l, n, "up1") == 0 {
			detect = time.Since(start)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	for _, p := range pings {
		sent, recv, err := p.Stop()
		if err != nil {
			t.Fatal(err)
		}
		loss = max(loss, time.Duration(sent-recv)*10*time.Millisecond)
	}
	if err := nftIn(l.ToRNS(1), "delete table inet "+silentTable+"\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "next hop back after the path", 60*time.Second, func() (bool, string) {
		v := nextHopsVia(l, n, "up1")
		return v == 2, fmt.Sprint(v)
	})
	return detect, loss
}

// Test 5: silent ToR (traffic dropped, carrier up) with two ToRs: the next
// hop leaves the node's defaults within hold + 1 s (10 s) without BFD and
// within 1 s with BFD (300ms x 3); pod traffic moves to the other ToR with
// a loss no longer than that.
func TestSilentToR(t *testing.T) {
	hold, holdLoss := silentToR(t, sharedLab(t), 3)
	bl := upLab(t, lab.Spec{ToRs: 2, Nodes: 2, PodsPerNode: 2, BFD: true})
	waitFor(t, "BFD up on node1's sessions", 60*time.Second, func() (bool, string) {
		st, err := nodeStatus(bl, 1)
		if err != nil {
			return false, err.Error()
		}
		for _, p := range st.Peers {
			if p.BFD != health.BFDUp {
				return false, fmt.Sprintf("%+v", st.Peers)
			}
		}
		return len(st.Peers) == 4, ""
	})
	bfd, bfdLoss := silentToR(t, bl, 1)
	ok := hold >= 0 && hold <= 10*time.Second && bfd >= 0 && bfd <= time.Second &&
		holdLoss <= hold+100*time.Millisecond && bfdLoss <= bfd+100*time.Millisecond
	report(t, "5 silent ToR", ok,
		"next hop removed after %s without BFD (hold 9 s), %s with BFD 300ms x 3; longest pod-traffic loss %s / %s … target ≤ 10 s, ≤ 1 s, loss ≤ detection",
		dur(hold), dur(bfd), holdLoss, bfdLoss)
}

func dur(d time.Duration) string {
	if d < 0 {
		return "never (within the wait)"
	}
	return d.Round(10 * time.Millisecond).String()
}
