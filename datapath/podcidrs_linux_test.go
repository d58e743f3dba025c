package datapath

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const podCIDRsChildEnv = "PODROUTER_DATAPATH_PODCIDRS_CHILD"

// TestNetnsLatePodCIDRs: a node whose pod CIDRs arrive after the fast path
// started (Kubernetes assigns spec.podCIDRs later) gets its pods hooked
// once SetPodCIDRs hands them over: discovery follows the live pod CIDRs,
// not the ones of Config at start.
func TestNetnsLatePodCIDRs(t *testing.T) {
	if arg := os.Getenv(podCIDRsChildEnv); arg != "" {
		latePodCIDRsChild(t, arg)
		return
	}
	requireRoot(t)
	suffix := fmt.Sprintf("%06x", rand.Uint32()&0xffffff)
	node, pod := "prlnode-"+suffix, "prlpod-"+suffix
	run(t, "ip", "netns", "add", node)
	run(t, "ip", "netns", "add", pod)
	t.Cleanup(func() {
		for _, ns := range []string{node, pod} {
			exec.Command("ip", "netns", "del", ns).Run() //nolint:errcheck // may be gone
		}
	})
	bpffs := t.TempDir()
	if err := unix.Mount("bpf", bpffs, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(bpffs, unix.MNT_DETACH) })
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", "--net=/var/run/netns/"+node, self,
		"-test.run=^TestNetnsLatePodCIDRs$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), podCIDRsChildEnv+"="+pod+","+filepath.Join(bpffs, "podrouter"))
	out, err := cmd.CombinedOutput()
	t.Logf("child output:\n%s", out)
	if err != nil || !strings.Contains(string(out), "--- PASS: TestNetnsLatePodCIDRs") {
		t.Fatalf("child failed: %v", err)
	}
}

func latePodCIDRsChild(t *testing.T, arg string) {
	pod, pinDir, _ := strings.Cut(arg, ",")
	for _, c := range []string{
		"ip link set lo up",
		"ip link add up0 type veth peer name up0p", // no traffic here: only the hook matters
		"ip link set up0 up",
		"ip link set up0p up",
		"ip link add vlp type veth peer name eth0 netns " + pod,
		"ip addr add 10.245.0.1/32 dev vlp",
		"ip link set vlp up",
		"ip route add 10.245.0.10/32 dev vlp scope link",
		"ip netns exec " + pod + " ip addr add 10.245.0.10/32 dev eth0",
		"ip netns exec " + pod + " ip link set eth0 up",
		"ip netns exec " + pod + " ip route add 10.245.0.1 dev eth0 scope link",
		"ping -c 1 -W 2 10.245.0.10", // the pod's MAC in the neighbour table, as traffic leaves it
	} {
		run(t, strings.Fields(c)...)
	}
	d, err := New(Config{PinDir: pinDir, Uplinks: []string{"up0"}, ResyncInterval: 100 * time.Millisecond,
		CTSizeTCP: 1024, CTSizeOther: 1024}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if err := Unpin(pinDir); err != nil {
			t.Error(err)
		}
	}()
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
