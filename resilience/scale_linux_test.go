package resilience

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/podrouter/podrouter/lab"
)

// Test 15: scale. One rack of 48 light nodes (podrouter without pods) and
// two ToRs; every daemon restarted at once (SIGTERM, then all started
// together): all pod CIDRs back at both ToRs (time printed), no
// session stuck longer than 5 s after its daemon started, per-daemon RSS
// and CPU printed.
func TestScale(t *testing.T) {
	requireLab(t)
	nodes := 48
	ctx := context.Background()
	t0 := time.Now()
	l := upLab(t, lab.Spec{ToRs: 2, Nodes: nodes, Light: true, NoWait: true})
	var want []netip.Prefix
	for n := 1; n <= nodes; n++ {
		want = append(want, lab.PodCIDRs(n)...)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	if err := l.WaitToRRoutes(wctx, want); err != nil {
		cancel()
		t.Fatalf("rack never converged: %v", err)
	}
	cancel()
	upTook := time.Since(t0)
	// Every daemon stopped and started at once.
	var wg sync.WaitGroup
	for n := 1; n <= nodes; n++ {
		wg.Add(1)
		go func() { defer wg.Done(); _ = l.StopSpeaker(ctx, n, syscall.SIGTERM) }()
	}
	wg.Wait()
	start := time.Now()
	errs := make(chan error, nodes)
	for n := 1; n <= nodes; n++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- l.StartSpeaker(ctx, n) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Per session: when both ToRs first see it Established.
	upAt := map[string]time.Duration{}
	sessions := nodes * 2 * l.Spec.ToRs
	deadline := time.Now().Add(3 * time.Minute)
	for len(upAt) < sessions && time.Now().Before(deadline) {
		for k := 1; k <= l.Spec.ToRs; k++ {
			for _, f := range []lab.Family{lab.IPv4, lab.IPv6} {
				ss, err := l.ToRSessions(ctx, k, f)
				if err != nil {
					continue
				}
				for _, s := range ss {
					key := fmt.Sprintf("tor%d %s", k, s.Peer)
					if _, seen := upAt[key]; !seen && s.State == "Established" {
						upAt[key] = time.Since(start)
					}
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	// All pod CIDRs installed and no longer stale at both ToRs.
	if err := l.WaitToRRoutes(ctx, want); err != nil {
		t.Fatal(err)
	}
	allBack := time.Since(start)
	var times []time.Duration
	for _, d := range upAt {
		times = append(times, d)
	}
	slices.Sort(times)
	stuck := 0
	for _, d := range times {
		if d > 5*time.Second {
			stuck++
		}
	}
	time.Sleep(5 * time.Second) // steady state for the resource figures
	var rss []uint64
	var cpu []time.Duration
	for n := 1; n <= nodes; n++ {
		pid, _ := l.SpeakerPID(n)
		if ps, err := readProc(pid); err == nil {
			rss = append(rss, ps.RSS>>20)
			cpu = append(cpu, ps.CPU)
		}
	}
	slices.Sort(rss)
	slices.Sort(cpu)
	med := func(i int) int { return i / 2 }
	report(t, "15 scale", len(upAt) == sessions && stuck == 0,
		"%d nodes x 2 ToRs (rack up in %s): all %d pod CIDRs back at both ToRs %s after restarting every daemon at once; sessions up %d/%d, median %s, slowest %s, over 5 s %d; per daemon RSS median %d MB (max %d), CPU since start median %s (max %s) … target all, 0 stuck > 5 s",
		nodes, upTook.Round(time.Second), len(want), allBack.Round(100*time.Millisecond), len(upAt), sessions,
		times[med(len(times))].Round(100*time.Millisecond), times[len(times)-1].Round(100*time.Millisecond), stuck,
		rss[med(len(rss))], rss[len(rss)-1], cpu[med(len(cpu))].Round(10*time.Millisecond), cpu[len(cpu)-1].Round(10*time.Millisecond))
}
