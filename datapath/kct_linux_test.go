package datapath

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"
	"github.com/vishvananda/netns"
)

// BPF_PROG_RUN against REAL nf_conntrack entries. BPF_PROG_RUN gives the
// packet the loopback device of the calling thread's netns, and
// bpf_skb_ct_lookup searches that netns's conntrack table: so the test
// locks its thread into a fresh named netns, where `conntrack -I` (with
// --dst-nat/--src-nat, which run nf_nat's own setup and set the status
// bits) writes the entries kube-proxy's rules would create.

// enterNetns moves the calling goroutine's thread into a fresh named netns
// until the test ends, and returns the name.
func enterNetns(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("prkct-%06x", rand.Uint32()&0xffffff)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		tb.Fatalf("ip netns add: %v\n%s", err, out)
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		tb.Fatal(err)
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		tb.Fatal(err)
	}
	if err := netns.Set(h); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread() // else the locked thread dies with the goroutine
		}
		orig.Close()
		h.Close()
		exec.Command("ip", "netns", "del", name).Run() //nolint:errcheck // best effort
	})
	return name
}

// nfct runs conntrack(8) in netns ns.
func nfct(tb testing.TB, ns string, args ...string) string {
	tb.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "conntrack"}, args...)...).CombinedOutput()
	if err != nil {
		tb.Fatalf("conntrack %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// nfInsert creates an nf_conntrack entry: orig src:sport -> dst:dport,
// plus NAT arguments (--dst-nat ip:port, --src-nat ip).
func nfInsert(tb testing.TB, ns, proto string, src, dst netip.AddrPort, nat ...string) {
	tb.Helper()
	args := []string{"-I", "-p", proto, "-s", src.Addr().String(), "-d", dst.Addr().String(),
		"--sport", fmt.Sprint(src.Port()), "--dport", fmt.Sprint(dst.Port()), "-t", "120"}
	if proto == "tcp" {
		args = append(args, "--state", "ESTABLISHED")
	}
	nfct(tb, ns, append(args, nat...)...)
}

func natTo(a netip.AddrPort) string {
	if a.Addr().Is6() {
		return fmt.Sprintf("[%s]:%d", a.Addr(), a.Port())
	}
	return a.String()
}

func TestKernelConntrack(t *testing.T) {
	requireRoot(t)
	ns := enterNetns(t)
	f := newFixture(t, Config{}, loadOpts{ttlDec: 1})
	f.setNextHops(true)
	vip4, vip6 := netip.MustParseAddr("10.96.0.10"), netip.MustParseAddr("fd00:96::10")

	type pkt struct {
		fromNet  bool // uplink (from-network) or pod B's veth (from-endpoint)
		proto    uint8
		src, dst netip.AddrPort
		synOnly  bool // TCP SYN without ACK (else SYN-ACK)
	}
	send := func(p pkt) (uint32, []byte, []byte) {
		t.Helper()
		smac, dmac, prog := macPodB, macHostB, f.objs.ep.FromEndpoint
		if p.fromNet {
			smac, dmac, prog = macToR, macUp, f.objs.net.FromNetwork
		}
		flags := uint8(tcpSYN | tcpACK)
		if p.synOnly {
			flags = tcpSYN
		}
		in := frame(dmac, smac, p.src.Addr(), p.dst.Addr(), p.proto,
			l4(p.src.Addr(), p.dst.Addr(), p.proto, p.src.Port(), p.dst.Port(), flags, []byte("x")), frameOpts{})
		ret, out := f.run(prog, in)
		return ret, in, out
	}
	for _, tc := range []struct {
		name    string
		proto   string
		orig    [2]netip.AddrPort // nf_conntrack original tuple
		nat     []string
		p       pkt            // the packet the fast path sees first
		ctOrig  netip.AddrPort // podrouter entry: source as listed
		ctReply netip.AddrPort // podrouter entry: destination as listed
		pkts    [2]uint64      // podrouter entry packets after the first packet
		stack   bool           // expected: to the stack as pass-nat
	}{
		{
			name: "clusterip reply from a remote backend (uplink)", proto: "tcp",
			orig: [2]netip.AddrPort{ap(podA4, 40000), ap(vip4, 80)}, nat: []string{"--dst-nat", natTo(ap(remote4, 8080))},
			p:      pkt{true, protoTCP, ap(remote4, 8080), ap(podA4, 40000), false},
			ctOrig: ap(podA4, 40000), ctReply: ap(remote4, 8080), pkts: [2]uint64{0, 1}, stack: true,
		},
		{
			name: "clusterip reply from a local backend", proto: "tcp",
			orig: [2]netip.AddrPort{ap(podA4, 40001), ap(vip4, 80)}, nat: []string{"--dst-nat", natTo(ap(podB4, 8080))},
			p:      pkt{false, protoTCP, ap(podB4, 8080), ap(podA4, 40001), false},
			ctOrig: ap(podA4, 40001), ctReply: ap(podB4, 8080), pkts: [2]uint64{0, 1}, stack: true,
		},
		{
			name: "dns over udp, local backend", proto: "udp",
			orig: [2]netip.AddrPort{ap(podA4, 5353), ap(vip4, 53)}, nat: []string{"--dst-nat", natTo(ap(podB4, 53))},
			p:      pkt{false, protoUDP, ap(podB4, 53), ap(podA4, 5353), false},
			ctOrig: ap(podA4, 5353), ctReply: ap(podB4, 53), pkts: [2]uint64{0, 1}, stack: true,
		},
		{
			name: "nodeport externalTrafficPolicy Local reply to an external client", proto: "tcp",
			orig: [2]netip.AddrPort{ap(remote4, 5555), ap(node4, 30080)}, nat: []string{"--dst-nat", natTo(ap(podB4, 8080))},
			p:      pkt{false, protoTCP, ap(podB4, 8080), ap(remote4, 5555), false},
			ctOrig: ap(remote4, 5555), ctReply: ap(podB4, 8080), pkts: [2]uint64{0, 1}, stack: true,
		},
		{
			name: "snat, packet in the original direction", proto: "udp",
			orig: [2]netip.AddrPort{ap(podB4, 7000), ap(remote4, 53)}, nat: []string{"--src-nat", node4.String()},
			p:      pkt{false, protoUDP, ap(podB4, 7000), ap(remote4, 53), false},
			ctOrig: ap(podB4, 7000), ctReply: ap(remote4, 53), pkts: [2]uint64{1, 0}, stack: true,
		},
		{
			name: "ipv6 clusterip reply from a remote backend (uplink)", proto: "tcp",
			orig: [2]netip.AddrPort{ap(podA6, 40000), ap(vip6, 80)}, nat: []string{"--dst-nat", natTo(ap(remote6, 8080))},
			p:      pkt{true, protoTCP, ap(remote6, 8080), ap(podA6, 40000), false},
			ctOrig: ap(podA6, 40000), ctReply: ap(remote6, 8080), pkts: [2]uint64{0, 1}, stack: true,
		},
		{
			name: "ipv6 dns over udp, local backend", proto: "udp",
			orig: [2]netip.AddrPort{ap(podA6, 5353), ap(vip6, 53)}, nat: []string{"--dst-nat", natTo(ap(podB6, 53))},
			p:      pkt{false, protoUDP, ap(podB6, 53), ap(podA6, 5353), false},
			ctOrig: ap(podA6, 5353), ctReply: ap(podB6, 53), pkts: [2]uint64{0, 1}, stack: true,
		},
		{
			name: "nf_conntrack entry without nat stays on the fast path", proto: "udp",
			orig:   [2]netip.AddrPort{ap(podB4, 5000), ap(podA4, 53)},
			p:      pkt{false, protoUDP, ap(podB4, 5000), ap(podA4, 53), false},
			ctOrig: ap(podB4, 5000), ctReply: ap(podA4, 53), pkts: [2]uint64{1, 0},
		},
		{
			// A connection's opening SYN never asks nf_conntrack (it cannot
			// have crossed netfilter before): even a NATed entry is not seen.
			name: "tcp syn without ack does not ask", proto: "tcp",
			orig: [2]netip.AddrPort{ap(podB4, 40005), ap(remote4, 80)}, nat: []string{"--src-nat", node4.String()},
			p:      pkt{false, protoTCP, ap(podB4, 40005), ap(remote4, 80), true},
			ctOrig: ap(podB4, 40005), ctReply: ap(remote4, 80), pkts: [2]uint64{1, 0},
		},
		{
			name:   "no nf_conntrack entry: fast path",
			p:      pkt{false, protoTCP, ap(podB6, 8080), ap(podA6, 41000), false},
			ctOrig: ap(podB6, 8080), ctReply: ap(podA6, 41000), pkts: [2]uint64{1, 0},
		},
	} {
		if tc.proto != "" {
			nfInsert(t, ns, tc.proto, tc.orig[0], tc.orig[1], tc.nat...)
		}
		dir := 0
		if tc.p.fromNet {
			dir = 1
		}
		nat0 := f.count(dir, fromEndpointPrReasonPR_PASS_NAT)
		ret, in, out := send(tc.p)
		e, ok := f.ct(tc.ctOrig, tc.ctReply)
		if !ok {
			t.Errorf("%s: no conntrack entry %s -> %s", tc.name, tc.ctOrig, tc.ctReply)
			continue
		}
		if e.Stack != tc.stack || e.Packets != tc.pkts || e.SeenReply != (tc.pkts[1] > 0) {
			t.Errorf("%s: entry %+v, want stack=%v packets %v", tc.name, e, tc.stack, tc.pkts)
		}
		if !tc.stack {
			if ret != actRedirect {
				t.Errorf("%s: verdict %d, want redirect", tc.name, ret)
			}
			if n := f.count(dir, fromEndpointPrReasonPR_PASS_NAT); n != nat0 {
				t.Errorf("%s: pass-nat counter moved %d -> %d", tc.name, nat0, n)
			}
			continue
		}
		if ret != actOK || string(in) != string(out) {
			t.Errorf("%s: verdict %d (want %d, to the stack), packet changed %v", tc.name, ret, actOK, string(in) != string(out))
		}
		if n := f.count(dir, fromEndpointPrReasonPR_PASS_NAT); n != nat0+1 {
			t.Errorf("%s: pass-nat counter %d -> %d, want +1", tc.name, nat0, n)
		}
		// Later packets hit the flagged entry without asking the kernel:
		// with the nf_conntrack entry gone, they still go to the stack.
		nfct(t, ns, "-D", "-p", tc.proto, "-s", tc.orig[0].Addr().String(), "--sport", fmt.Sprint(tc.orig[0].Port()))
		if ret, _, _ := send(tc.p); ret != actOK {
			t.Errorf("%s: second packet verdict %d, want to the stack", tc.name, ret)
		}
		e2, _ := f.ct(tc.ctOrig, tc.ctReply)
		if !e2.Stack || e2.Packets[0]+e2.Packets[1] != 2 {
			t.Errorf("%s: entry after the second packet %+v", tc.name, e2)
		}
		if n := f.count(dir, fromEndpointPrReasonPR_PASS_NAT); n != nat0+2 {
			t.Errorf("%s: pass-nat counter %d -> %d, want +2", tc.name, nat0, n)
		}
	}
	// Lifetimes: a flagged entry lives as any other (TCP with a reply:
	// established; UDP: the UDP lifetime).
	if e, _ := f.ct(ap(podA4, 40000), ap(remote4, 8080)); e.Expires < time.Hour {
		t.Errorf("tcp stack entry expires in %s, want the established lifetime", e.Expires)
	}
	if e, _ := f.ct(ap(podA4, 5353), ap(podB4, 53)); e.Expires <= 0 || e.Expires > 61*time.Second {
		t.Errorf("udp stack entry expires in %s, want <= 60s", e.Expires)
	}
}

// A flagged entry expires and is collected like any other; the next
// packet asks nf_conntrack again.
func TestKernelConntrackExpiry(t *testing.T) {
	requireRoot(t)
	ns := enterNetns(t)
	f := newFixture(t, Config{CTTimeouts: CTTimeouts{UDP: time.Millisecond}}, loadOpts{ttlDec: 1})
	vip := netip.MustParseAddr("10.96.0.10")
	nfInsert(t, ns, "udp", ap(podA4, 5353), ap(vip, 53), "--dst-nat", natTo(ap(podB4, 53)))
	in := frame(macHostB, macPodB, podB4, podA4, protoUDP, l4(podB4, podA4, protoUDP, 53, 5353, 0, nil), frameOpts{})
	if ret, _ := f.run(f.objs.ep.FromEndpoint, in); ret != actOK {
		t.Fatalf("verdict %d, want to the stack", ret)
	}
	if e, ok := f.ct(ap(podA4, 5353), ap(podB4, 53)); !ok || !e.Stack {
		t.Fatalf("entry %+v found=%v, want stack", e, ok)
	}
	time.Sleep(20 * time.Millisecond) // > 1 ms plus the coarse clock's tick
	del, _, err := gcConntrack(f.objs.ep.PrCtTcp, f.objs.ep.PrCtOther)
	if err != nil || del != 1 {
		t.Fatalf("gc deleted %d (%v), want the expired stack entry", del, err)
	}
	if ret, _ := f.run(f.objs.ep.FromEndpoint, in); ret != actOK {
		t.Errorf("after gc: verdict %d, want to the stack", ret)
	}
	if e, ok := f.ct(ap(podA4, 5353), ap(podB4, 53)); !ok || !e.Stack || e.Packets != [2]uint64{0, 1} {
		t.Errorf("after gc: entry %+v found=%v, want a new stack entry", e, ok)
	}
	if n := f.count(0, fromEndpointPrReasonPR_PASS_NAT); n != 2 {
		t.Errorf("pass-nat counter %d, want 2", n)
	}
}

// KernelCTAny: any nf_conntrack entry, translated or not, sends the flow
// to the stack (for proxies that translate without nf_nat, e.g. IPVS).
func TestKernelConntrackAny(t *testing.T) {
	requireRoot(t)
	ns := enterNetns(t)
	f := newFixture(t, Config{KernelConntrack: KernelCTAny}, loadOpts{ttlDec: 1})
	f.setNextHops(true)
	for _, c := range []struct{ src, dst netip.AddrPort }{
		{ap(podB4, 5000), ap(podA4, 53)},
		{ap(podB6, 5000), ap(remote6, 53)},
	} {
		nfInsert(t, ns, "udp", c.src, c.dst)
		in := frame(macHostB, macPodB, c.src.Addr(), c.dst.Addr(), protoUDP, l4(c.src.Addr(), c.dst.Addr(), protoUDP, c.src.Port(), c.dst.Port(), 0, nil), frameOpts{})
		if ret, _ := f.run(f.objs.ep.FromEndpoint, in); ret != actOK {
			t.Errorf("%s -> %s: verdict %d, want to the stack", c.src, c.dst, ret)
		}
		if e, ok := f.ct(c.src, c.dst); !ok || !e.Stack {
			t.Errorf("%s -> %s: entry %+v found=%v, want stack", c.src, c.dst, e, ok)
		}
	}
	// A flow nf_conntrack does not know keeps the fast path.
	in := frame(macHostB, macPodB, podB4, podA4, protoUDP, l4(podB4, podA4, protoUDP, 5001, 53, 0, nil), frameOpts{})
	if ret, _ := f.run(f.objs.ep.FromEndpoint, in); ret != actRedirect {
		t.Errorf("unknown flow: verdict %d, want redirect", ret)
	}
	if n := f.count(0, fromEndpointPrReasonPR_PASS_NAT); n != 2 {
		t.Errorf("pass-nat counter %d, want 2", n)
	}
}

// A kernel without the conntrack kfuncs cannot be had here (nf_conntrack
// is built in), so the real collection spec is loaded with its kfunc
// renamed to one no kernel has: cilium/ebpf then fails exactly as on such
// a kernel, and the loader must say why.
func TestMissingKfunc(t *testing.T) {
	requireRoot(t)
	ep, net, err := loadSpecs(Config{}.withDefaults(), loadOpts{ttlDec: 1})
	if err != nil {
		t.Fatal(err)
	}
	var fn *btf.Func
	if err := ep.Types.TypeByName("bpf_skb_ct_lookup", &fn); err != nil {
		t.Fatal(err)
	}
	fn.Name = "pr_no_such_kfunc"
	objs, err := loadCollections(ep, net, loadOpts{})
	if err == nil {
		objs.Close()
		t.Fatal("loaded without the kfunc")
	}
	if !errors.Is(err, ErrNoConntrackKfunc) || !strings.Contains(err.Error(), "bpf_skb_ct_lookup") {
		t.Errorf("error %q: want ErrNoConntrackKfunc naming bpf_skb_ct_lookup", err)
	}
	t.Logf("load error: %v", err)
}

// ICMP errors about a translated flow go to the stack (netfilter rewrites
// the embedded header); those about other flows are still forwarded.
func TestKernelConntrackICMPError(t *testing.T) {
	requireRoot(t)
	ns := enterNetns(t)
	f := newFixture(t, Config{}, loadOpts{ttlDec: 1})
	f.setNextHops(true)
	vip4, vip6 := netip.MustParseAddr("10.96.0.10"), netip.MustParseAddr("fd00:96::10")
	nfInsert(t, ns, "udp", ap(podA4, 5353), ap(vip4, 53), "--dst-nat", natTo(ap(podB4, 53)))
	nfInsert(t, ns, "tcp", ap(podA6, 40000), ap(vip6, 80), "--dst-nat", natTo(ap(remote6, 8080)))
	// embedded: the IP header and 8 bytes of L4 of a packet src -> dst.
	embedded := func(proto uint8, src, dst netip.AddrPort) []byte {
		b := frame(macPodA, macHostA, src.Addr(), dst.Addr(), proto, l4(src.Addr(), dst.Addr(), proto, src.Port(), dst.Port(), tcpSYN, nil), frameOpts{})[14:]
		hl := 20
		if src.Addr().Is6() {
			hl = 40
		}
		return b[:hl+8]
	}
	for _, tc := range []struct {
		name    string
		fromNet bool
		in      []byte
		ret     uint32
	}{
		{"port unreachable from a local backend, about a service flow", false,
			frame(macHostB, macPodB, podB4, podA4, protoICMP, icmpMsg(podB4, podA4, 3, 3, 0, embedded(protoUDP, ap(podA4, 5353), ap(podB4, 53))), frameOpts{}), actOK},
		{"packet too big from a remote backend, about a service flow", true,
			frame(macUp, macToR, remote6, podA6, protoICMPv6, icmpMsg(remote6, podA6, 2, 0, 1280, embedded(protoTCP, ap(podA6, 40000), ap(remote6, 8080))), frameOpts{}), actOK},
		{"port unreachable about a plain pod flow", false,
			frame(macHostB, macPodB, podB4, podA4, protoICMP, icmpMsg(podB4, podA4, 3, 3, 0, embedded(protoUDP, ap(podA4, 5354), ap(podB4, 53))), frameOpts{}), actRedirect},
	} {
		dir, prog := 0, f.objs.ep.FromEndpoint
		if tc.fromNet {
			dir, prog = 1, f.objs.net.FromNetwork
		}
		nat0 := f.count(dir, fromEndpointPrReasonPR_PASS_NAT)
		if ret, _ := f.run(prog, tc.in); ret != tc.ret {
			t.Errorf("%s: verdict %d, want %d", tc.name, ret, tc.ret)
		}
		want := nat0
		if tc.ret == actOK {
			want++
		}
		if n := f.count(dir, fromEndpointPrReasonPR_PASS_NAT); n != want {
			t.Errorf("%s: pass-nat counter %d, want %d", tc.name, n, want)
		}
	}
	if all, _ := readConntrack(f.objs.ep.PrCtTcp, f.objs.ep.PrCtOther); len(all) != 0 {
		t.Errorf("ICMP errors created conntrack entries: %+v", all)
	}
}

// The nf_conntrack lookup mode is switched while the programs run (the
// daemon moves to any when it finds kube-proxy in IPVS mode): no reload,
// new flows follow the new mode, flows already tracked keep their verdict.
func TestKernelConntrackSwitchLive(t *testing.T) {
	requireRoot(t)
	ns := enterNetns(t)
	f := newFixture(t, Config{}, loadOpts{ttlDec: 1})
	f.setNextHops(true)
	send := func(sport uint16) uint32 {
		src, dst := ap(podB4, sport), ap(podA4, 53)
		nfInsert(t, ns, "udp", src, dst) // known to nf_conntrack, not translated
		in := frame(macHostB, macPodB, src.Addr(), dst.Addr(), protoUDP, l4(src.Addr(), dst.Addr(), protoUDP, src.Port(), dst.Port(), 0, nil), frameOpts{})
		ret, _ := f.run(f.objs.ep.FromEndpoint, in)
		return ret
	}
	if ret := send(6000); ret != actRedirect {
		t.Fatalf("nat mode, untranslated flow: verdict %d, want redirect", ret)
	}
	if err := f.objs.setKernelCT(kctMode(KernelCTAny, false)); err != nil {
		t.Fatal(err)
	}
	if ret := send(6001); ret != actOK {
		t.Errorf("any mode, new flow known to nf_conntrack: verdict %d, want to the stack", ret)
	}
	// The flow tracked before the switch keeps the fast path.
	in := frame(macHostB, macPodB, podB4, podA4, protoUDP, l4(podB4, podA4, protoUDP, 6000, 53, 0, nil), frameOpts{})
	if ret, _ := f.run(f.objs.ep.FromEndpoint, in); ret != actRedirect {
		t.Errorf("flow tracked before the switch: verdict %d, want redirect", ret)
	}
	if err := f.objs.setKernelCT(kctMode(KernelCTNAT, false)); err != nil {
		t.Fatal(err)
	}
	if ret := send(6002); ret != actRedirect {
		t.Errorf("back to nat mode, untranslated flow: verdict %d, want redirect", ret)
	}
}
