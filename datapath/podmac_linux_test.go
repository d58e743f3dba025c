package datapath

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// TestNetnsEndpointHooks: a pod is hooked at once, before it sent anything (its
// MAC read from the veth peer in the pod's namespace), and stays hooked
// when the node's neighbour entry for it goes (garbage collection of an
// entry the fast path never refreshes). An endpoint whose pod MAC is not
// known is not hooked: its requests would leave on the fast path while its
// replies, with no endpoint entry to deliver them, took the kernel path,
// where netfilter sees replies without requests (INVALID, which
// kube-proxy's iptables rules drop). Drift: an endpoint map entry deleted
// and a hook detached behind the daemon's back are put back within a
// second by the guard, and counted.
func TestNetnsEndpointHooks(t *testing.T) {
	if arg := os.Getenv(childEnv); arg != "" {
		podMACChild(t, arg)
		return
	}
	runInNodeNetns(t, "TestNetnsEndpointHooks")
}

func podMACChild(t *testing.T, arg string) {
	suffix, pinDir, _ := strings.Cut(arg, ",")
	pod := "prpoda-" + suffix
	setupOnePod(t, pod, "vmp", "10.246.0.1", "10.246.0.10")
	d, ctx, stop := runDatapath(t, Config{PinDir: pinDir, Uplinks: []string{"up0"}, ResyncInterval: 100 * time.Millisecond,
		PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.246.0.0/24")}, CTSizeTCP: 1024, CTSizeOther: 1024})
	defer stop()
	p, err := OpenPinned(pinDir)
	for i := 0; err != nil && i < 50; i++ {
		time.Sleep(50 * time.Millisecond)
		p, err = OpenPinned(pinDir)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	endpoints := func() int {
		eps, err := p.Endpoints()
		if err != nil {
			t.Fatal(err)
		}
		return len(eps)
	}
	podMAC := strings.TrimSpace(run(t, "ip", "netns", "exec", pod, "cat", "/sys/class/net/eth0/address"))
	waitFor(t, "the pod hooked before any traffic", func() bool { return slices.Equal(d.Status().Attached, []string{"up0", "vmp"}) })
	eps, err := p.Endpoints()
	if err != nil || len(eps) != 1 || eps[0].PodMAC.String() != podMAC {
		t.Fatalf("endpoint map %+v (%v), want the pod with MAC %s", eps, err, podMAC)
	}
	if out := run(t, "ip", "neigh", "show", "dev", "vmp"); strings.Contains(out, "10.246.0.10") {
		t.Fatalf("the node already has a neighbour entry for the pod (the test must not send to it): %s", out)
	}
	// The neighbour entry comes and goes: the pod stays hooked.
	run(t, "ping", "-c", "1", "-W", "2", "10.246.0.10")
	run(t, "ip", "neigh", "flush", "dev", "vmp")
	time.Sleep(400 * time.Millisecond)
	if at, n := d.Status().Attached, endpoints(); !slices.Equal(at, []string{"up0", "vmp"}) || n != 1 {
		t.Errorf("neighbour entry gone: attached %v, %d endpoints; want the pod still hooked", at, n)
	}
	// A veth whose pod MAC is unknown (an explicit endpoint without one):
	// neither hooked nor in the endpoint map; with the MAC, both.
	run(t, "ip", "link", "add", "vmx", "type", "veth", "peer", "name", "vmxp")
	run(t, "ip", "link", "set", "vmx", "up")
	vmx, err := net.InterfaceByName("vmx")
	if err != nil {
		t.Fatal(err)
	}
	ep := Endpoint{IfName: "vmx", IfIndex: vmx.Index, HostMAC: vmx.HardwareAddr, Addrs: []netip.Addr{netip.MustParseAddr("10.246.0.20")}}
	if err := d.SetEndpoints(ctx, []Endpoint{ep}); err != nil {
		t.Fatal(err)
	}
	if at, n := d.Status().Attached, endpoints(); slices.Contains(at, "vmx") || n != 1 {
		t.Errorf("pod MAC unknown: attached %v, %d endpoints; want vmx neither hooked nor an endpoint", at, n)
	}
	ep.PodMAC = net.HardwareAddr{2, 0, 0, 0, 0, 0x20}
	if err := d.SetEndpoints(ctx, []Endpoint{ep}); err != nil {
		t.Fatal(err)
	}
	if at, n := d.Status().Attached, endpoints(); !slices.Contains(at, "vmx") || n != 2 {
		t.Errorf("pod MAC known: attached %v, %d endpoints; want vmx hooked", at, n)
	}

	// Drift: an endpoint entry deleted behind the daemon's back.
	m, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, "pr_endpoints"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	k := makeAddrKey(netip.MustParseAddr("10.246.0.10"))
	if err := m.Delete(&k); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitFor(t, "the deleted endpoint entry put back", func() bool { return endpoints() == 2 })
	if took, st := time.Since(start), d.Status(); took > time.Second || st.RepairedEntries < 1 {
		t.Errorf("endpoint entry repaired after %s, counted %d; want <= 1 s and counted", took, st.RepairedEntries)
	}
	// Drift: a hook detached (as `bpftool link detach` does).
	pin := linkPin(pinDir, endpointPrefix, "vmp")
	l, err := link.LoadPinnedLink(pin, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Detach(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	vmp := ifindexOf(t, "vmp")
	start = time.Now()
	waitFor(t, "the detached hook attached again", func() bool { ids, _ := HookPrograms(vmp); return len(ids) == 1 })
	if took, st := time.Since(start), d.Status(); took > time.Second || st.RepairedHooks < 1 {
		t.Errorf("hook repaired after %s, counted %d; want <= 1 s and counted", took, st.RepairedHooks)
	}

	// A pass prefix the daemon removes is not "repaired" back by the guard.
	repaired := d.Status().RepairedEntries
	svc := netip.MustParsePrefix("10.97.0.0/24")
	if err := d.SetPassCIDRs(ctx, []netip.Prefix{svc}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // a guard pass with it
	if err := d.SetPassCIDRs(ctx, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond) // two guard passes without it
	if got, err := d.PassCIDRs(); err != nil || slices.Contains(got, svc) {
		t.Errorf("pass cidrs after removing %s: %v (%v)", svc, got, err)
	}
	if n := d.Status().RepairedEntries; n != repaired {
		t.Errorf("the daemon's own pass-prefix changes counted as %d repairs", n-repaired)
	}
}

func TestPodMACsRemember(t *testing.T) {
	var p podMACs
	host := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	pod := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	if got := p.remember(7, host, nil); got != nil {
		t.Fatalf("nothing seen yet: %v", got)
	}
	if got := p.remember(7, host, pod); got.String() != pod.String() {
		t.Fatalf("seen: %v", got)
	}
	if got := p.remember(7, host, nil); got.String() != pod.String() {
		t.Fatalf("remembered: %v", got)
	}
	// Another veth with the same ifindex (a new pod) does not inherit it.
	if got := p.remember(7, net.HardwareAddr{2, 0, 0, 0, 0, 9}, nil); got != nil {
		t.Fatalf("new veth: %v", got)
	}
	p.keep(map[int]*Endpoint{})
	if got := p.remember(7, host, nil); got != nil {
		t.Fatalf("after the veth went: %v", got)
	}
}
