package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/podrouter/podrouter/health"
	"github.com/podrouter/podrouter/lab"
)

// bfdTestTable is the nftables table the test loads in ToR 1's namespace.
const bfdTestTable = "podrouter_bfd_test"

// TestLabBFD: with BFD (300ms x 3) on every session, a silent failure of
// node1's link to ToR 1 (ToR 1 drops everything on its side of the link,
// both families; carrier stays up, so only BFD or the 9 s hold timer can
// notice) takes ToR 1's next hop out of node1's default routes in about a
// second, and the next hop comes back once the path does. The same failure
// in a lab without BFD is measured for reference (hold timer), not asserted.
func TestLabBFD(t *testing.T) {
	requireLab(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatalf("nft missing: run `make deps` (CI installs it): %v", err)
	}
	var withBFD, withoutBFD time.Duration
	t.Run("bfd", func(t *testing.T) {
		l := upLab(t, 2, func(s *lab.Spec) { s.BFD = true })
		// BFD up as the operator sees it: at the ToRs, one session per
		// node and family, and in podrouter status for every peer of node1.
		waitFor(t, "BFD up everywhere", 30*time.Second, func() (bool, string) {
			for k := 1; k <= 2; k++ {
				if ok, why := torBFDUp(t, l, k, 6); !ok {
					return false, why
				}
			}
			st := nodeStatus(t, l, 1)
			for _, p := range st.Peers {
				if p.State != health.SessionEstablished || p.BFD != health.BFDUp {
					return false, fmt.Sprintf("node1 peer %s: %s, bfd %q", p.Address, p.State, p.BFD)
				}
			}
			return len(st.Peers) == 4, fmt.Sprintf("node1 has %d peers", len(st.Peers))
		})
		t.Logf("node1 status:\n%s", nodeExec(t, l, 1, podrouterBin, "status", "--socket", socket(l, 1)))
		withBFD = silentFailure(t, l, 15*time.Second)
		if withBFD > 3*time.Second {
			t.Errorf("silent failure detected after %s: want < 3s with BFD 300ms x 3 (the hold time is 9s)", withBFD)
		}
		waitFor(t, "BFD up again", 30*time.Second, func() (bool, string) {
			if ok, why := torBFDUp(t, l, 1, 6); !ok {
				return false, why
			}
			for _, p := range nodeStatus(t, l, 1).Peers {
				if p.BFD != health.BFDUp {
					return false, fmt.Sprintf("node1 peer %s: bfd %q", p.Address, p.BFD)
				}
			}
			return true, ""
		})
	})
	t.Run("hold-timer", func(t *testing.T) {
		l := upLab(t, 2)
		for _, p := range nodeStatus(t, l, 1).Peers {
			if p.BFD != health.BFDOff {
				t.Fatalf("BFD runs without being configured: %+v", p)
			}
		}
		withoutBFD = silentFailure(t, l, 20*time.Second)
	})
	t.Logf("silent failure detected after %s with BFD 300ms x 3, %s without (hold time 9s)",
		withBFD.Round(time.Millisecond), withoutBFD.Round(time.Millisecond))
}

// silentFailure makes ToR 1 drop every packet in or out of its side of
// node1's link (inet: IPv4 and IPv6, ND included; ARP and carrier
// untouched), returns how long it took until neither of node1's default
// routes had a next hop towards ToR 1 (polled over netlink every 10 ms),
// checks that traffic still flows over ToR 2, restores the path and waits
// for the next hop to come back.
func silentFailure(t *testing.T, l *lab.Lab, timeout time.Duration) time.Duration {
	t.Helper()
	ctx := context.Background()
	h := nodeHandle(t, l, 1)
	up1, err := h.LinkByName("up1")
	if err != nil {
		t.Fatal(err)
	}
	// viaUp1 counts the families whose default route has a next hop over
	// up1 (towards ToR 1).
	viaUp1 := func() int {
		links, err := defaultLinks(h)
		if err != nil {
			t.Logf("route list: %v", err)
			return -1
		}
		n := 0
		for _, ls := range links {
			if slices.Contains(ls, up1.Attrs().Index) {
				n++
			}
		}
		return n
	}
	if n := viaUp1(); n != 2 {
		t.Fatalf("before the failure: %d of 2 default routes use up1\n%s", n, kernelState(t, l, 1))
	}

	torNS, torIf := l.ToRNS(1), "n1"
	nft := func(script string) error {
		cmd := exec.Command("ip", "netns", "exec", torNS, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("nft in %s: %v\n%s", torNS, err, out)
		}
		return nil
	}
	t.Cleanup(func() { _ = nft("delete table inet " + bfdTestTable + "\n") }) // fails when restored already
	drop := fmt.Sprintf(`table inet %[1]s {
	chain drop_in { type filter hook input priority raw; iifname %[2]q drop; }
	chain drop_out { type filter hook output priority raw; oifname %[2]q drop; }
	chain drop_fwd { type filter hook forward priority raw; iifname %[2]q drop; oifname %[2]q drop; }
}
`, bfdTestTable, torIf)
	start := time.Now()
	if err := nft(drop); err != nil {
		t.Fatal(err)
	}
	deadline := start.Add(timeout)
	for viaUp1() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("ToR 1's next hop still in node1's default routes %s after the silent failure\n%s", time.Since(start), kernelState(t, l, 1))
		}
		time.Sleep(10 * time.Millisecond)
	}
	detected := time.Since(start)
	carrier, err := h.LinkByName("up1")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("silent failure (carrier %s): ToR 1's next hop left both default routes of node1 after %s",
		carrier.Attrs().OperState, detected.Round(time.Millisecond))
	if carrier.Attrs().OperState != netlink.OperUp {
		t.Errorf("up1 is %s: the failure was meant to leave the carrier up", carrier.Attrs().OperState)
	}
	tor4, _ := lab.LinkV4(1, 1)
	tor6, _ := lab.LinkV6(1, 1)
	for _, p := range nodeStatus(t, l, 1).Peers {
		if (p.Address == tor4 || p.Address == tor6) && p.State == health.SessionEstablished {
			t.Errorf("node1's session with ToR 1 still established: %+v", p)
		}
	}
	// The fabric side converges too: ToR 1 (its own BFD or hold timer)
	// stops routing node1's pods into the dead link; until it has, replies
	// that node2 hashes to ToR 1 are lost, which is the fabric's loss, not
	// the node's. Then pod traffic must flow over ToR 2 without loss.
	for _, f := range families {
		src, _ := l.PodIP(ctx, 1, 1, f)
		waitFor(t, fmt.Sprintf("ToR 1 routing %s around the dead link", src), timeout, func() (bool, string) {
			out, _ := l.Exec(ctx, torNS, "ip", "route", "get", src.String())
			return !strings.Contains(out, "dev "+torIf+" "), out
		})
	}
	t.Logf("ToR 1 routes node1's pods around the dead link %s after the failure", time.Since(start).Round(time.Millisecond))
	for _, f := range families {
		dst, _ := l.PodIP(ctx, 2, 1, f)
		if err := lab.Ping(ctx, l.PodNS(1, 1), dst, 3); err != nil {
			t.Errorf("%s ping over ToR 2 during the failure: %v", f, err)
		}
	}

	restored := time.Now()
	if err := nft("delete table inet " + bfdTestTable + "\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ToR 1's next hop back in both default routes", 60*time.Second, func() (bool, string) {
		return viaUp1() == 2, kernelState(t, l, 1)
	})
	back := time.Since(restored)
	t.Logf("path restored: ToR 1's next hop back after %s", back.Round(time.Millisecond))
	// The session was reset: Idle for 5 s (bgp/bfd.go's
	// idleHoldAfterReset, not GoBGP's default 30 s), then connect.
	if back > 20*time.Second {
		t.Errorf("next hop back only %s after the path: want < 20s (idle hold after reset is 5s)", back)
	}
	return detected
}

// torBFDUp reports whether ToR k has want BFD sessions, all up
// (`show bfd peers json`).
func torBFDUp(t *testing.T, l *lab.Lab, k, want int) (bool, string) {
	t.Helper()
	var peers []struct {
		Peer   string `json:"peer"`
		Status string `json:"status"`
	}
	if err := l.VtyshJSON(context.Background(), k, "show bfd peers json", &peers); err != nil {
		return false, err.Error()
	}
	up := 0
	for _, p := range peers {
		if p.Status == "up" {
			up++
		}
	}
	return up == want && len(peers) == want, fmt.Sprintf("tor%d bfd peers: %+v", k, peers)
}
