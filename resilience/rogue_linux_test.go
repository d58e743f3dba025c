package resilience

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/podrouter/podrouter/bgp/bgptest"
	"github.com/podrouter/podrouter/lab"
)

func vtyshConf(t *testing.T, l *lab.Lab, tor int, lines ...string) {
	t.Helper()
	args := []string{"-N", l.ToRNS(tor), "-c", "configure terminal"}
	for _, ln := range lines {
		args = append(args, "-c", ln)
	}
	if out, err := exec.Command("vtysh", args...).CombinedOutput(); err != nil {
		t.Fatalf("vtysh: %v\n%s", err, out)
	}
}

// adjOut lists what node n advertises to peer (gobgp neighbor adj-out).
func adjOut(t *testing.T, l *lab.Lab, n int, peer netip.Addr) []string {
	t.Helper()
	out := nodeExec(t, l, n, gobgpBin, "-p", "50051", "neighbor", peer.String(), "adj-out", "-a", "ipv4", "-j")
	var rib map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &rib); err != nil {
		t.Fatalf("adj-out: %v %.200s", err, out)
	}
	return sortedKeys(rib)
}

// Test 8: rogue routes. ToR 1 announces to every node, besides the
// default: another node's pod CIDR, a /32 inside it, the node's own CIDR,
// the cluster supernet and 1,000 random prefixes; a second, unexpected
// speaker (from node2's namespace) tries to peer with node1 and offer a
// default. On node1: routes installed other than the ToR defaults 0, all
// counted as rejected, nothing passed on to ToR 2, pod traffic unaffected.
func TestRogueRoutes(t *testing.T) {
	l := sharedLab(t)
	ctx := context.Background()
	const rogueN = 1000
	kernelBefore := nodeExec(t, l, 1, "ip", "-4", "route", "show", "table", "all")
	rejBefore, _ := metricSum(l, 1, "podrouter_bgp_prefixes_rejected")
	rng := rand.New(rand.NewPCG(7, 8))
	rogue := []string{"10.0.2.0/24", "10.0.2.77/32", "10.0.1.0/24", "10.0.0.0/8"}
	for len(rogue) < rogueN+4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], 0x64400000|rng.Uint32N(1<<14)<<8) // 100.64.0.0/10 in /24s
		p := netip.PrefixFrom(netip.AddrFrom4(b), 24).String()
		if !strings.Contains(strings.Join(rogue, " "), p) {
			rogue = append(rogue, p)
		}
	}
	// BGP network statements (no staticd in the lab; import-check off so
	// that FRR originates them without a RIB route).
	conf := []string{"ip prefix-list DEFAULT4 seq 10 permit 0.0.0.0/0 le 32", fmt.Sprintf("router bgp %d", lab.ToRASN),
		"no bgp network import-check", "address-family ipv4 unicast"}
	for _, p := range rogue {
		if p != "10.0.2.0/24" && p != "10.0.1.0/24" { // those two the ToR has from the nodes
			conf = append(conf, "network "+p)
		}
	}
	vtyshConf(t, l, 1, conf...)
	t.Cleanup(func() {
		undo := []string{"no ip prefix-list DEFAULT4 seq 10 permit 0.0.0.0/0 le 32", fmt.Sprintf("router bgp %d", lab.ToRASN), "address-family ipv4 unicast"}
		for _, p := range rogue {
			if p != "10.0.2.0/24" && p != "10.0.1.0/24" {
				undo = append(undo, "no network "+p)
			}
		}
		vtyshConf(t, l, 1, undo...)
	})
	dst, _ := l.PodIP(ctx, 3, 1, lab.IPv4)
	ping := startPing(t, l, l.PodNS(1, 1), dst)

	// The unexpected speaker: node1 listens (as the DaemonSet does); a
	// speaker in node2's namespace connects and offers a default.
	startDaemon(t, l, 1, edit(t, labConfig(t, l, 1), "listenPort: -1", "listenPort: 179"))
	waitFor(t, "node1 sessions", 60*time.Second, func() (bool, string) { return established(l, 1, 4) })
	strangerSessions := 0
	for range 3 {
		var p *bgptest.Peer
		_ = inNS(l.NodeNS(2), func() error {
			c, err := dialTTL(lab.LinkAddrNode(1, 1), 255)
			if err != nil {
				return err
			}
			hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			p, err = bgptest.Handshake(hctx, c, bgptest.Config{ASN: 65002, RouterID: netip.MustParseAddr("192.168.255.2")})
			if err != nil {
				c.Close()
			}
			return err
		})
		if p != nil {
			strangerSessions++
			_ = p.Send(bgptest.Announce(lab.LinkAddrNode(1, 2)))
			time.Sleep(time.Second)
			p.Close()
		}
	}
	// Wait until node1 has received the rogue set from ToR 1.
	waitFor(t, "rogue prefixes at node1", 60*time.Second, func() (bool, string) {
		v, err := metricSum(l, 1, "podrouter_bgp_prefixes_rejected")
		return err == nil && v-rejBefore >= float64(rogueN), fmt.Sprintf("rejected %v", v-rejBefore)
	})
	time.Sleep(2 * time.Second)
	rejected, _ := metricSum(l, 1, "podrouter_bgp_prefixes_rejected")
	kernelAfter := nodeExec(t, l, 1, "ip", "-4", "route", "show", "table", "all")
	extra := 0
	for _, ln := range strings.Split(kernelAfter, "\n") {
		if ln != "" && !strings.Contains(kernelBefore, ln) && !strings.HasPrefix(ln, "default ") {
			extra++
			t.Logf("new route on node1: %s", ln)
		}
	}
	tor2, _ := lab.LinkV4(2, 1)
	sent := adjOut(t, l, 1, tor2)
	transit := 0
	for _, p := range sent {
		if p != lab.PodCIDRs(1)[0].String() {
			transit++
		}
	}
	time.Sleep(time.Second)
	psent, precv, err := ping.Stop()
	if err != nil {
		t.Fatal(err)
	}
	report(t, "8 rogue routes", extra == 0 && rejected-rejBefore >= float64(len(rogue)-1) && transit == 0 && psent == precv && strangerSessions == 0,
		"%d rogue prefixes from ToR 1 + an unexpected speaker (%d sessions): routes installed besides the ToR defaults %d, counted as rejected %.0f, passed on to ToR 2 %d (adj-out %v), pod pings lost %d of %d … target 0, all, 0, 0",
		len(rogue), strangerSessions, extra, rejected-rejBefore, transit, sent, psent-precv, psent)
}
