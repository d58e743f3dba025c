package datapath

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The privileged end-to-end test. The parent creates a fresh "node" netns
// and a private bpffs, then re-runs this test binary inside the node netns
// (runInNodeNetns). The child builds two ptp-style pods and an uplink to a
// "ToR" netns (setupNode), runs the Datapath, pings, restarts it, and
// checks hooks, counters and conntrack.

const childEnv = "PODROUTER_DATAPATH_NETNS_CHILD"

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestNetnsDatapath(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		netnsChild(t, os.Getenv(childEnv))
		return
	}
	runInNodeNetns(t, "TestNetnsDatapath")
}

// runInNodeNetns is the parent side of a netns test: a fresh "node" netns
// and a private bpffs, then the test binary re-run inside the node netns
// (nsenter --net, so the mount namespace and bpffs stay visible) for test
// name only, with childEnv set to "suffix,pinDir".
func runInNodeNetns(t *testing.T, name string) {
	requireRoot(t)
	suffix := fmt.Sprintf("%06x", rand.Uint32()&0xffffff)
	node := "prnode-" + suffix
	run(t, "ip", "netns", "add", node)
	t.Cleanup(func() {
		for _, ns := range []string{node, "prpoda-" + suffix, "prpodb-" + suffix, "prtor-" + suffix} {
			exec.Command("ip", "netns", "del", ns).Run() //nolint:errcheck // may not exist
		}
	})
	bpffs := t.TempDir()
	if err := unix.Mount("bpf", bpffs, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(bpffs, unix.MNT_DETACH) })
	pinDir := filepath.Join(bpffs, "podrouter")

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", "--net=/var/run/netns/"+node, self,
		"-test.run=^"+name+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+suffix+","+pinDir)
	out, err := cmd.CombinedOutput()
	t.Logf("child output:\n%s", out)
	if err != nil || !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("child failed: %v", err)
	}
	if _, err := os.Stat(pinDir); !os.IsNotExist(err) {
		t.Errorf("pin dir %s still exists after cleanup: %v", pinDir, err)
	}
}

// sh runs each command line (split on spaces) and fails the test on error.
func sh(t *testing.T, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		run(t, strings.Fields(c)...)
	}
}

// setupNode builds, inside the node netns, two ptp-style pods (a
// 10.244.0.10, b 10.244.0.20; /32 on both sides, host route to the pod
// via its veth, as CNI ptp does) and an uplink up0 (192.0.2.1/24) to a
// ToR netns (192.0.2.2, 198.51.100.1 on lo, 10.244.0.0/24 via the node).
func setupNode(t *testing.T, suffix string) (podA, podB, tor string) {
	podA, podB, tor = "prpoda-"+suffix, "prpodb-"+suffix, "prtor-"+suffix
	for _, ns := range []string{podA, podB, tor} {
		run(t, "ip", "netns", "add", ns)
	}
	sh(t, "sysctl -qw net.ipv4.ip_forward=1", "ip link set lo up")
	for _, p := range []struct{ ns, veth, ip string }{{podA, "vpa", "10.244.0.10"}, {podB, "vpb", "10.244.0.20"}} {
		sh(t, "ip link add "+p.veth+" type veth peer name eth0 netns "+p.ns,
			"ip addr add 10.244.0.1/32 dev "+p.veth,
			"ip link set "+p.veth+" up",
			"ip route add "+p.ip+"/32 dev "+p.veth+" scope link",
			"ip netns exec "+p.ns+" ip addr add "+p.ip+"/32 dev eth0",
			"ip netns exec "+p.ns+" ip link set eth0 up",
			"ip netns exec "+p.ns+" ip link set lo up",
			"ip netns exec "+p.ns+" ip route add 10.244.0.1 dev eth0 scope link",
			"ip netns exec "+p.ns+" ip route add default via 10.244.0.1 dev eth0")
	}
	sh(t, "ip link add up0 type veth peer name eth0 netns "+tor,
		"ip addr add 192.0.2.1/24 dev up0", "ip link set up0 up",
		"ip route add default via 192.0.2.2",
		"ip netns exec "+tor+" ip addr add 192.0.2.2/24 dev eth0",
		"ip netns exec "+tor+" ip link set eth0 up",
		"ip netns exec "+tor+" ip addr add 198.51.100.1/32 dev lo",
		"ip netns exec "+tor+" ip link set lo up",
		"ip netns exec "+tor+" ip route add 10.244.0.0/24 via 192.0.2.1")
	return podA, podB, tor
}

func netnsChild(t *testing.T, arg string) {
	suffix, pinDir, _ := strings.Cut(arg, ",")
	podA, podB, _ := setupNode(t, suffix)

	cfg := Config{
		PinDir:         pinDir,
		Uplinks:        []string{"up0"},
		PodCIDRs:       []netip.Prefix{netip.MustParsePrefix("10.244.0.0/24")},
		ResyncInterval: 200 * time.Millisecond,
		CTSizeTCP:      1024, CTSizeOther: 1024,
	}
	ping := func(ns, dst string) {
		t.Helper()
		run(t, "ip", "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-W", "1", dst)
	}
	counters := func(d *Datapath) map[string]uint64 {
		cs, err := d.Counters()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]uint64{}
		for _, c := range cs {
			m[c.Direction+"/"+c.Reason] = c.Packets
		}
		return m
	}
	start := func() (*Datapath, context.CancelFunc, chan error) {
		d, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		waitFor(t, "three hooks attached", func() bool { return len(d.Status().Attached) == 3 })
		return d, cancel, done
	}

	// Warm the neighbour tables through the kernel path, then start.
	ping(podA, "10.244.0.20")
	d, cancel, done := start()
	waitFor(t, "both pods in the endpoint map", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		n := 0
		var k addrKey
		var v epValue
		for it := d.impl.objs.ep.PrEndpoints.Iterate(); it.Next(&k, &v); {
			n++
		}
		return n == 2
	})
	ping(podA, "10.244.0.20")
	c := counters(d)
	if c["from-endpoint/fwd-redirect-peer"] < 6 {
		t.Errorf("pod-to-pod: redirect_peer counter %d, want >= 6 (3 echo + 3 reply)", c["from-endpoint/fwd-redirect-peer"])
	}
	netnsMonitor(t, d, podA)
	// Remote without a cached next hop: fib + redirect_neigh; replies come
	// back through from-network -> redirect_peer.
	ping(podA, "198.51.100.1")
	c = counters(d)
	if c["from-endpoint/fwd-redirect-neigh"] < 3 || c["from-network/fwd-redirect-peer"] < 3 {
		t.Errorf("remote via fib: %v", c)
	}
	// With the next hop cached.
	if err := d.SetNextHops(context.Background(), []NextHop{{Gateway: netip.MustParseAddr("192.0.2.2"), Uplink: "up0"}}); err != nil {
		t.Fatal(err)
	}
	ping(podB, "198.51.100.1")
	c = counters(d)
	if c["from-endpoint/fwd-nexthop"] < 3 {
		t.Errorf("remote via cached next hop: %v", c)
	}
	// Bulk TCP between the pods: GSO skbs whose linear data holds just the
	// headers must be forwarded whole (no drop, no resegmentation).
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Fatalf("iperf3 missing (make deps installs it): %v", err)
	}
	run(t, "ip", "netns", "exec", podB, "iperf3", "-s", "-1", "-D", "-p", "5299")
	sums := func() map[string]Counter {
		cs, err := d.Counters()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]Counter{}
		for _, c := range cs {
			m[c.Direction+"/"+c.Reason] = c
		}
		return m
	}
	bulk := func(what string) (bytes, pkts uint64) {
		before := sums()
		var out []byte
		var err error
		for try := 0; try < 20; try++ { // the daemonised server may not listen yet
			out, err = exec.Command("ip", "netns", "exec", podA, "iperf3", "-c", "10.244.0.20", "-p", "5299", "-n", "32M").CombinedOutput()
			if err == nil || !strings.Contains(string(out), "unable to connect") {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("%s: iperf3: %v\n%s", what, err, out)
		}
		after := sums()
		var drops uint64
		for k, a := range after {
			if strings.Contains(k, "/drop-") {
				drops += a.Packets - before[k].Packets
			}
		}
		k := "from-endpoint/fwd-redirect-peer"
		pkts, bytes = after[k].Packets-before[k].Packets, after[k].Bytes-before[k].Bytes
		if bytes < 16<<20 || drops != 0 { // the last segments may still be in flight
			t.Errorf("%s: %d bytes in %d packets redirected, %d drops; iperf3:\n%s", what, bytes, pkts, drops, out)
			return 0, 1
		}
		t.Logf("%s: %d bytes in %d packets through redirect_peer (%d bytes/packet)", what, bytes, pkts, bytes/pkts)
		return bytes, pkts
	}
	if bytes, pkts := bulk("tcp bulk"); bytes/pkts < 3000 {
		t.Errorf("tcp bulk: %d bytes/packet, want GSO packets", bytes/pkts)
	}
	// IPv4 BIG TCP (Linux >= 6.3): GSO packets above 64 KB carry IP
	// tot_len 0 and must be forwarded, not counted malformed.
	enableBigTCP(t, podA, "eth0", 196608)
	run(t, "ip", "netns", "exec", podB, "iperf3", "-s", "-1", "-D", "-p", "5299")
	// The trace shows the packets' sizes: some must exceed 64 KB.
	mctx, stopMonitor := context.WithCancel(context.Background())
	var biggest atomic.Uint32
	traced := make(chan error, 1)
	go func() {
		traced <- d.Monitor(mctx, []string{"to-endpoint"}, 1, func(ev Event) {
			if ev.Len > biggest.Load() {
				biggest.Store(ev.Len)
			}
		})
	}()
	time.Sleep(200 * time.Millisecond) // the monitor turns tracing on
	bulk("tcp bulk, BIG TCP")
	stopMonitor()
	if err := <-traced; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("monitor: %v", err)
	}
	if b := biggest.Load(); b <= 65535 {
		t.Errorf("BIG TCP: largest packet redirected %d bytes, want above 64 KB", b)
	} else {
		t.Logf("BIG TCP: largest packet redirected %d bytes", b)
	}
	c = counters(d)
	t.Logf("counters before restart: %v", c)
	ctBefore, err := d.Conntrack()
	if err != nil || len(ctBefore) == 0 {
		t.Fatalf("conntrack: %v %v", ctBefore, err)
	}
	for _, e := range ctBefore {
		t.Logf("ct %d %s -> %s pkts %v reply=%v expires %s", e.Proto, e.Src, e.Dst, e.Packets, e.SeenReply, e.Expires.Round(time.Second))
	}
	ids := hookIDs(t, "vpa", "vpb", "up0")

	// Restart: new Datapath, same pins.
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for name, id := range hookIDs(t, "vpa", "vpb", "up0") {
		if id != ids[name] {
			t.Errorf("%s: program changed while stopped", name)
		}
	}
	d2, cancel2, done2 := start()
	ctAfter, err := d2.Conntrack()
	if err != nil || len(ctAfter) < len(ctBefore) {
		t.Errorf("conntrack after restart: %d entries, before %d (%v)", len(ctAfter), len(ctBefore), err)
	}
	for name, id := range hookIDs(t, "vpa", "vpb", "up0") {
		if id == ids[name] {
			t.Errorf("%s: program not replaced on restart", name)
		}
	}
	ping(podB, "10.244.0.10")
	if c := counters(d2); c["from-endpoint/fwd-redirect-peer"] < 6 {
		t.Errorf("after restart: %v", c)
	}
	// Endpoint goes away: its hook and pin go too.
	run(t, "ip", "link", "del", "vpb")
	waitFor(t, "vpb detached", func() bool { return len(d2.Status().Attached) == 2 })
	if pins, _ := pinnedLinks(pinDir, endpointPrefix); len(pins) != 1 {
		t.Errorf("endpoint pins %v, want only vpa", pins)
	}
	cancel2()
	if err := <-done2; err != nil {
		t.Fatal(err)
	}
	if err := Unpin(pinDir); err != nil {
		t.Fatal(err)
	}
	if ids, _ := HookPrograms(ifindexOf(t, "vpa")); len(ids) != 0 {
		t.Errorf("programs left on vpa after Unpin: %v", ids)
	}
}

// hookIDs asserts exactly one program on each hook and returns its id.
func hookIDs(t *testing.T, names ...string) map[string]uint32 {
	t.Helper()
	out := map[string]uint32{}
	for _, n := range names {
		ids, err := HookPrograms(ifindexOf(t, n))
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != 1 {
			t.Fatalf("%s: %d programs on tcx ingress, want 1", n, len(ids))
		}
		out[n] = ids[0]
	}
	return out
}

func ifindexOf(t *testing.T, name string) int {
	t.Helper()
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return ifi.Index
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runDatapath runs a Datapath for cfg until stop, which cancels it, waits
// for Run and unpins cfg.PinDir, reporting failures with t.Error. ctx is
// Run's context.
func runDatapath(t *testing.T, cfg Config) (d *Datapath, ctx context.Context, stop func()) {
	t.Helper()
	d, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	return d, ctx, func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if err := Unpin(cfg.PinDir); err != nil {
			t.Error(err)
		}
	}
}

// setupOnePod builds, inside the node netns, an uplink up0 (a veth whose
// peer stays in the node netns: no traffic, only its hook matters) and one
// ptp-style pod in a new netns pod: host veth with gw/32, a /32 route to
// addr through it, and in the pod addr/32 on eth0 with a route to gw.
func setupOnePod(t *testing.T, pod, veth, gw, addr string) {
	t.Helper()
	run(t, "ip", "netns", "add", pod)
	in := "ip netns exec " + pod + " "
	sh(t, "ip link set lo up",
		"ip link add up0 type veth peer name up0p",
		"ip link set up0 up",
		"ip link set up0p up",
		"ip link add "+veth+" type veth peer name eth0 netns "+pod,
		"ip addr add "+gw+"/32 dev "+veth,
		"ip link set "+veth+" up",
		"ip route add "+addr+"/32 dev "+veth+" scope link",
		in+"ip addr add "+addr+"/32 dev eth0",
		in+"ip link set eth0 up",
		in+"ip route add "+gw+" dev eth0 scope link")
}

// enableBigTCP raises the GSO limits of link in netns ns (IPv4 BIG TCP,
// Linux >= 6.3; the fast path's tcx hooks need 6.6 anyway).
func enableBigTCP(t *testing.T, ns, link string, size int) {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	l, err := nh.LinkByName(link)
	if err != nil {
		t.Fatal(err)
	}
	if err := nh.LinkSetGSOMaxSize(l, size); err != nil {
		t.Fatalf("gso_max_size: %v", err)
	}
	if err := nh.LinkSetGSOIPv4MaxSize(l, size); err != nil {
		t.Fatalf("gso_ipv4_max_size: %v", err)
	}
}
