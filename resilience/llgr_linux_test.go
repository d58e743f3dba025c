package resilience

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podrouter/podrouter/lab"
)

// llgrOutage kills node1's daemon (started with gr, a gracefulRestart
// block) and reports whether ToR 1 still has node1's IPv4 pod CIDR after
// wait, and the ToR's view of the route.
func llgrOutage(t *testing.T, l *lab.Lab, gr string, wait time.Duration) (bool, string) {
	t.Helper()
	ctx := context.Background()
	conf := strings.ReplaceAll(labConfig(t, l, 1), "connectRetry: 1s}", "connectRetry: 1s, gracefulRestart: "+gr+"}")
	d := startDaemon(t, l, 1, conf)
	waitFor(t, "node1 sessions", 60*time.Second, func() (bool, string) { return established(l, 1, 2) })
	waitFor(t, "node1's pod CIDR at the ToR", 30*time.Second, func() (bool, string) {
		return l.WaitToRRoutes(ctx, lab.PodCIDRs(1)[:1]) == nil, ""
	})
	d.stop(syscall.SIGKILL)
	time.Sleep(wait)
	rs, _ := l.ToRRoutes(ctx, 1, lab.IPv4)
	has := false
	for _, p := range rs {
		if p == lab.PodCIDRs(1)[0] {
			has = true
		}
	}
	out, _ := l.Vtysh(ctx, 1, "show bgp ipv4 unicast "+lab.PodCIDRs(1)[0].String())
	return has, out
}

// Test 2c: long-lived graceful restart (RFC 9494) next to graceful
// restart. node1's daemon dies (kill -9) and stays away longer than its
// restart time (5 s): with gracefulRestart.longLivedStaleTime 60 s the ToR
// still routes to node1's pod CIDR 12 s later (as LLGR_STALE, depreferred);
// with graceful restart alone the route is gone by then.
func TestLongLivedGracefulRestart(t *testing.T) {
	requireLab(t)
	l := upLab(t, lab.Spec{ToRs: 1, Nodes: 1, PodsPerNode: 1})
	// FRR keeps a peer's routes as long-lived stale only up to its own
	// stale-time (0: never).
	vtyshConf(t, l, 1, fmt.Sprintf("router bgp %d", lab.ToRASN), "bgp long-lived-graceful-restart stale-time 120")
	const wait = 12 * time.Second
	withLLGR, view := llgrOutage(t, l, "{enabled: true, restartTime: 5s, longLivedStaleTime: 60s}", wait)
	t.Logf("ToR's view with LLGR, %s after the kill:\n%s", wait, view)
	if err := l.StartSpeaker(context.Background(), 1); err == nil {
		waitFor(t, "node1 back", 60*time.Second, func() (bool, string) { return established(l, 1, 2) })
		_ = l.StopSpeaker(context.Background(), 1, syscall.SIGTERM)
	}
	withoutLLGR, _ := llgrOutage(t, l, "{enabled: true, restartTime: 5s}", wait)
	report(t, "2c long-lived graceful restart", withLLGR && !withoutLLGR,
		"node1 killed, restart time 5 s: ToR still routes its pod CIDR %s later with LLGR (stale time 60 s): %v; with GR only: %v … target true, false",
		wait, withLLGR, withoutLLGR)
}
