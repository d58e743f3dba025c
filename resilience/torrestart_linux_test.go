package resilience

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/podrouter/podrouter/lab"
)

// Test 3: ToR restart. The ToR (FRR, graceful-restart capable as a real
// ToR is) is killed and restarted 3 s later: node1's kernel default through
// it is never removed or changed (ip monitor route, the whole window), and
// the sessions are back within 5 s of the ToR's return.
func TestToRRestart(t *testing.T) {
	requireLab(t)
	l := upLab(t, lab.Spec{ToRs: 1, Nodes: 1, PodsPerNode: 1, ToRGracefulRestart: true})
	ctx := context.Background()
	mon := monitorRoutes(t, l.NodeNS(1), "default")
	if err := l.StopToR(ctx, 1, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := l.StartToR(ctx, 1); err != nil {
		t.Fatal(err)
	}
	back := waitFor(t, "node1 sessions back", 60*time.Second, func() (bool, string) { return established(l, 1, 2) })
	time.Sleep(2 * time.Second) // past the stale sweep after End-of-RIB
	changes := mon.Stop()
	for _, c := range changes {
		t.Logf("default route change on node1: %s", c)
	}
	report(t, "3 ToR restart", len(changes) == 0 && back <= 5*time.Second,
		"kernel default changes on the node during the ToR's kill -9 + 3 s + restart %d, sessions re-established %s after the ToR's return … target 0, ≤ 5 s",
		len(changes), back.Round(100*time.Millisecond))
}
