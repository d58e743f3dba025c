package routes

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

func TestBlackholes(t *testing.T) {
	tn := newTestNet(t, 1)
	ctx := context.Background()
	pods := []netip.Prefix{netip.MustParsePrefix("10.77.1.0/24"), netip.MustParsePrefix("fd00:77:0:1::/64")}
	// A foreign route at the v4 pod CIDR's key and a foreign one elsewhere.
	tn.ip("route", "add", "blackhole", "10.99.0.0/16", "metric", "20")
	show := func() string {
		return tn.ip("route", "show", "type", "blackhole") + tn.ip("-6", "route", "show", "type", "blackhole")
	}
	changed, err := tn.inst.SetBlackholes(ctx, pods)
	if err != nil || !changed {
		t.Fatalf("first SetBlackholes: changed=%v err=%v", changed, err)
	}
	got := show()
	for _, want := range []string{"blackhole 10.77.1.0/24 proto 201 metric 20", "blackhole fd00:77:0:1::/64 dev lo proto 201 metric 20", "blackhole 10.99.0.0/16 metric 20"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if changed, err := tn.inst.SetBlackholes(ctx, pods); err != nil || changed {
		t.Fatalf("second SetBlackholes must be a no-op: changed=%v err=%v", changed, err)
	}
	// A pod /32 is more specific than the blackhole: still routed.
	tn.ip("route", "add", "10.77.1.5/32", "dev", "up1")
	if out := tn.ip("route", "get", "10.77.1.5"); !strings.Contains(out, "dev up1") {
		t.Errorf("pod /32 shadowed by the blackhole: %s", out)
	}
	if out, err := exec.Command("ip", "-n", tn.node, "route", "get", "10.77.1.6").CombinedOutput(); err == nil && !strings.Contains(string(out), "blackhole") {
		t.Errorf("unassigned pod address not blackholed: %s", out)
	}
	// Someone else's route at our key is not replaced; the error says so.
	tn.ip("route", "add", "10.88.0.0/24", "via", "10.1.0.1", "metric", "20")
	if _, err := tn.inst.SetBlackholes(ctx, append(pods, netip.MustParsePrefix("10.88.0.0/24"))); err == nil || !strings.Contains(err.Error(), "did not install") {
		t.Errorf("foreign route at the key: err %v", err)
	}
	if out := tn.ip("route", "show", "10.88.0.0/24"); !strings.Contains(out, "via 10.1.0.1") {
		t.Errorf("foreign route touched: %s", out)
	}
	// Empty: ours go, the foreign blackhole stays.
	if _, err := tn.inst.SetBlackholes(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got := show(); strings.Contains(got, "proto 201") || !strings.Contains(got, "10.99.0.0/16") {
		t.Errorf("after SetBlackholes(nil):\n%s", got)
	}
}
