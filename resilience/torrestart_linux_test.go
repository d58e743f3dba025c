package resilience

import (
	"bufio"
	"context"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/podrouter/podrouter/lab"
)

// routeMonitor records every `ip monitor route` line about default routes
// in a namespace.
type routeMonitor struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func monitorDefaults(t *testing.T, ns string) *routeMonitor {
	t.Helper()
	m := &routeMonitor{cmd: exec.Command("ip", "-n", ns, "monitor", "route"), done: make(chan struct{})}
	out, err := m.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(m.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ln := sc.Text()
			if strings.Contains(ln, "default") {
				m.mu.Lock()
				m.lines = append(m.lines, time.Now().Format("15:04:05.000 ")+ln)
				m.mu.Unlock()
			}
		}
	}()
	time.Sleep(200 * time.Millisecond) // subscribed
	return m
}

func (m *routeMonitor) Stop() []string {
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lines
}

// Test 3: ToR restart. The ToR (FRR, graceful-restart capable as a real
// ToR is) is killed and restarted 3 s later: node1's kernel default through
// it is never removed or changed (ip monitor route, the whole window), and
// the sessions are back within 5 s of the ToR's return.
func TestToRRestart(t *testing.T) {
	requireLab(t)
	l := upLab(t, lab.Spec{ToRs: 1, Nodes: 1, PodsPerNode: 1, ToRGracefulRestart: true})
	ctx := context.Background()
	mon := monitorDefaults(t, l.NodeNS(1))
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
