package resilience

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podrouter/podrouter/lab"
)

func defaultVia(l *lab.Lab, n int) string {
	out, _ := l.Exec(context.Background(), l.NodeNS(n), "ip", "-4", "route", "show", "default", "proto", "201")
	return strings.TrimSpace(out)
}

func endpointCount(l *lab.Lab, n int) int {
	out, err := l.Exec(context.Background(), l.NodeNS(n), podrouterBin, "bpf", "endpoint", "list", "-o", "json", "--pin-dir", l.Spec.NodePinDir(n))
	if err != nil {
		return -1
	}
	var rows []json.RawMessage
	if json.Unmarshal([]byte(out), &rows) != nil {
		return -1
	}
	return len(rows)
}

// Test 13: drift. On node2, behind the daemon's back: its default route
// deleted, then replaced by one through a bogus next hop, an entry of the
// endpoint map deleted, a tcx program detached. Each must be repaired
// within 1 s and counted.
func TestDrift(t *testing.T) {
	l := sharedLab(t)
	const n = 2
	ctx := context.Background()
	good := defaultVia(l, n)
	if good == "" {
		t.Fatal("node2 has no default route of podrouter's")
	}
	driftBefore, _ := metricSum(l, n, "podrouter_routes_drift_repairs_total")
	type result struct {
		what    string
		took    time.Duration
		counted bool
	}
	var res []result
	// (a) default deleted.
	nodeExec(t, l, n, "ip", "-4", "route", "del", "default", "proto", "201")
	took := poll(5*time.Second, 10*time.Millisecond, func() bool { return defaultVia(l, n) == good })
	d1, _ := metricSum(l, n, "podrouter_routes_drift_repairs_total")
	res = append(res, result{"default route deleted", took, d1 > driftBefore})
	// (b) replaced with a bogus next hop.
	nodeExec(t, l, n, "ip", "-4", "route", "replace", "default", "via", "10.99.99.99", "dev", "up1", "onlink", "proto", "201", "metric", "20")
	took = poll(5*time.Second, 10*time.Millisecond, func() bool { return defaultVia(l, n) == good })
	d2, _ := metricSum(l, n, "podrouter_routes_drift_repairs_total")
	res = append(res, result{"default via a bogus next hop", took, d2 > d1})
	// (c) an endpoint map entry deleted (the first key bpftool shows).
	// Entries appear once a pod's MAC is known: talk to every pod first.
	for p := 1; p <= l.Spec.PodsPerNode; p++ {
		for _, f := range []lab.Family{lab.IPv4, lab.IPv6} {
			dst, err := l.PodIP(ctx, n, p, f)
			if err != nil {
				t.Fatal(err)
			}
			if err := lab.Ping(ctx, l.PodNS(1, 1), dst, 2); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := 2 * l.Spec.PodsPerNode
	waitFor(t, "node2's endpoint map filled", 30*time.Second, func() (bool, string) {
		c := endpointCount(l, n)
		return c == want, fmt.Sprintf("%d of %d addresses", c, want)
	})
	pin := l.Spec.NodePinDir(n)
	epsBefore := endpointCount(l, n)
	// bpftool from the root namespace: maps are not per namespace, and
	// `ip netns exec` remounts /sys under it.
	dump := run(t, "bpftool", "-j", "map", "dump", "pinned", filepath.Join(pin, "pr_endpoints"))
	var entries []struct {
		Key []string `json:"key"`
	}
	if err := json.Unmarshal([]byte(dump), &entries); err != nil || len(entries) == 0 {
		t.Fatalf("endpoint map dump: %v %.200s (podrouter: %d endpoints)", err, dump, epsBefore)
	}
	dp0, _ := metricSum(l, n, "podrouter_datapath_drift_repairs_total")
	run(t, append([]string{"bpftool", "map", "delete", "pinned", filepath.Join(pin, "pr_endpoints"), "key", "hex"}, stripHex(entries[0].Key)...)...)
	took = poll(15*time.Second, 10*time.Millisecond, func() bool { return endpointCount(l, n) == epsBefore })
	dp1, _ := metricSum(l, n, "podrouter_datapath_drift_repairs_total")
	res = append(res, result{"endpoint map entry deleted", took, dp1 > dp0})
	// (d) the tcx program of a pod veth detached.
	var linkPin string
	filepath.WalkDir(pin, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() && strings.HasPrefix(e.Name(), "ep_") && linkPin == "" {
			linkPin = p
		}
		return nil
	})
	if linkPin == "" {
		t.Fatal("no pinned endpoint link")
	}
	run(t, "bpftool", "link", "detach", "pinned", linkPin)
	took = poll(15*time.Second, 10*time.Millisecond, func() bool { ok, _ := hooksOK(l, n); return ok })
	dp2, _ := metricSum(l, n, "podrouter_datapath_drift_repairs_total")
	res = append(res, result{"tcx program detached (" + strings.TrimPrefix(filepath.Base(linkPin), "ep_") + ")", took, dp2 > dp1})

	pass := true
	var parts []string
	for _, r := range res {
		ok := r.took >= 0 && r.took <= time.Second && r.counted
		pass = pass && ok
		tk := "never (15 s)"
		if r.took >= 0 {
			tk = r.took.Round(10 * time.Millisecond).String()
		}
		parts = append(parts, fmt.Sprintf("%s: repaired in %s, counted %v", r.what, tk, r.counted))
	}
	report(t, "13 drift", pass, "%s … target each ≤ 1 s and counted", strings.Join(parts, "; "))
}

// stripHex turns bpftool's ["0x0a","0x00",…] into ["0a","00",…].
func stripHex(k []string) []string {
	out := make([]string, len(k))
	for i, b := range k {
		out[i] = strings.TrimPrefix(b, "0x")
	}
	return out
}
