package resilience

import (
	"encoding/binary"
	"net/netip"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/podrouter/podrouter/bgp/bgptest"
)

// floodUpdates builds UPDATEs announcing n distinct /32s in 100.64.0.0/10
// through nh, packed up to the 4096-byte message limit.
func floodUpdates(n int, nh netip.Addr) [][]byte {
	attrs := []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(0),
		bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, []uint32{bgptest.PeerASN})}),
	}
	h, _ := bgp.NewPathAttributeNextHop(nh)
	attrs = append(attrs, h)
	const perMsg = 800 // 5 bytes each: 4000 bytes of NLRI
	var out [][]byte
	for i := 0; i < n; i += perMsg {
		var nlri []bgp.PathNLRI
		for j := i; j < min(n, i+perMsg); j++ {
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], 0x64400000+uint32(j))
			p, _ := bgp.NewIPAddrPrefix(netip.PrefixFrom(netip.AddrFrom4(b), 32))
			nlri = append(nlri, bgp.PathNLRI{NLRI: p})
		}
		m, err := bgp.NewBGPUpdateMessage(nil, attrs, nlri).Serialize()
		if err != nil {
			panic(err)
		}
		out = append(out, m)
	}
	return out
}

func kernelRouteCount(ns string) int {
	out, _ := exec.Command("ip", "-n", ns, "-4", "route", "show", "table", "all").Output()
	return strings.Count(string(out), "\n")
}

// Test 9: route flood. Of two ToRs, one sends 1,000,000 prefixes: max-prefix
// (1,000) trips, the daemon's RSS grows < 50 MB, kernel routes added 0, the
// session comes back by itself (restartAfter), and the default through the
// other ToR stays in the kernel the whole time.
func TestRouteFlood(t *testing.T) {
	requireLab(t)
	const total = 1_000_000
	r := newHostileRig(t, 2, ", maxPrefix: {limit: 1000, restartAfter: 5s}", "")
	lnA, lnB := r.listen(t, r.addrs[0]), r.listen(t, r.addrs[1])
	cfg := bgptest.Config{ASN: bgptest.PeerASN, RouterID: netip.MustParseAddr("192.0.2.100")}
	a, err := acceptPeer(lnA, cfg, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, err := acceptPeer(lnB, cfg, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a.Send(bgptest.Announce(r.addrs[0]))
	b.Send(bgptest.Announce(r.addrs[1]))
	waitFor(t, "both defaults in the kernel", 30*time.Second, func() (bool, string) {
		out, _ := exec.Command("ip", "-n", r.node, "route", "show", "default").Output()
		return strings.Contains(string(out), r.addrs[0].String()) && strings.Contains(string(out), r.addrs[1].String()), string(out)
	})
	pid := r.d.Process.Pid
	before, _ := readProc(pid)
	routesBefore := kernelRouteCount(r.node)
	msgs := floodUpdates(total, r.addrs[0])

	var peakRSS atomic.Uint64
	var defaultGone atomic.Int32
	stop := every(50*time.Millisecond, func() {
		if ps, err := readProc(pid); err == nil && ps.RSS > peakRSS.Load() {
			peakRSS.Store(ps.RSS)
		}
		out, _ := exec.Command("ip", "-n", r.node, "route", "show", "default").Output()
		if !strings.Contains(string(out), r.addrs[1].String()) {
			defaultGone.Add(1)
		}
	})
	start := time.Now()
	sentMsgs := 0
	for _, m := range msgs {
		if a.Send(m) != nil {
			break
		}
		sentMsgs++
	}
	n, err := a.WaitClosed(30 * time.Second)
	tripped := err == nil && n.Code == bgp.BGP_ERROR_CEASE && n.Subcode == bgp.BGP_ERROR_SUB_MAXIMUM_NUMBER_OF_PREFIXES_REACHED
	tripAfter := time.Since(start)
	a.Close()
	time.Sleep(2 * time.Second)
	routesAdded := kernelRouteCount(r.node) - routesBefore
	// Re-enable: the daemon connects again after restartAfter.
	reStart := time.Now()
	a2, rerr := acceptPeer(lnA, cfg, 30*time.Second)
	reenabled := rerr == nil
	reAfter := time.Since(reStart)
	if a2 != nil {
		a2.Close()
	}
	stop()
	growth := int64(peakRSS.Load()) - int64(before.RSS)
	report(t, "9 route flood", tripped && growth < 50<<20 && routesAdded <= 0 && reenabled && defaultGone.Load() == 0,
		"%d prefixes offered (%d UPDATEs written before the trip): max-prefix 1000 tripped %v (%v) after %s, RSS %d -> peak %d MB (growth %d MB), kernel routes added %d, re-enabled %v after %s (restartAfter 5s), default via the other ToR missing in %d samples … target trip, < 50 MB, 0, re-enabled, 0",
		total, sentMsgs, tripped, n, tripAfter.Round(time.Millisecond), before.RSS>>20, peakRSS.Load()>>20, growth>>20, max(routesAdded, 0), reenabled, reAfter.Round(100*time.Millisecond), defaultGone.Load())
}
