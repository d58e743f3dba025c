package datapath

import (
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestNetnsLatePodCIDRs: a node whose pod CIDRs arrive after the fast path
// started (Kubernetes assigns spec.podCIDRs later) gets its pods hooked
// once SetPodCIDRs hands them over: discovery follows the live pod CIDRs,
// not the ones of Config at start.
func TestNetnsLatePodCIDRs(t *testing.T) {
	if arg := os.Getenv(childEnv); arg != "" {
		latePodCIDRsChild(t, arg)
		return
	}
	runInNodeNetns(t, "TestNetnsLatePodCIDRs")
}

func latePodCIDRsChild(t *testing.T, arg string) {
	suffix, pinDir, _ := strings.Cut(arg, ",")
	setupOnePod(t, "prpoda-"+suffix, "vlp", "10.245.0.1", "10.245.0.10")
	run(t, "ping", "-c", "1", "-W", "2", "10.245.0.10") // the pod's MAC in the neighbour table, as traffic leaves it
	d, ctx, stop := runDatapath(t, Config{PinDir: pinDir, Uplinks: []string{"up0"}, ResyncInterval: 100 * time.Millisecond,
		CTSizeTCP: 1024, CTSizeOther: 1024})
	defer stop()
	waitFor(t, "the uplink hooked", func() bool { return slices.Contains(d.Status().Attached, "up0") })
	// Several resyncs without pod CIDRs: the pod's veth is not an endpoint.
	time.Sleep(400 * time.Millisecond)
	if at := d.Status().Attached; !slices.Equal(at, []string{"up0"}) {
		t.Fatalf("before pod CIDRs: attached %v, want only up0", at)
	}
	pods := []netip.Prefix{netip.MustParsePrefix("10.245.0.0/24")}
	if err := d.SetPodCIDRs(ctx, pods); err != nil {
		t.Fatal(err)
	}
	if at := d.Status().Attached; !slices.Equal(at, []string{"up0", "vlp"}) {
		t.Fatalf("after SetPodCIDRs: attached %v, want up0 and vlp", at)
	}
	p, err := OpenPinned(pinDir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	eps, err := p.Endpoints()
	if err != nil || len(eps) != 1 || eps[0].Addr != netip.MustParseAddr("10.245.0.10") {
		t.Fatalf("endpoint map %+v (%v), want 10.245.0.10", eps, err)
	}
	// Taken away again (the Node lost them): the hook goes.
	if err := d.SetPodCIDRs(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if at := d.Status().Attached; !slices.Equal(at, []string{"up0"}) {
		t.Errorf("after SetPodCIDRs(nil): attached %v, want only up0", at)
	}
}
