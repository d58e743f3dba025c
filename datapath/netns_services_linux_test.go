package datapath

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// TestNetnsServices reproduces issue 9 without Kubernetes: Service DNAT
// written by hand as kube-proxy writes it (iptables mode, then nftables
// mode) in a node netns, with the fast path off and then on. Every case
// (TCP, and UDP over a connected socket as resolvers use; IPv4 and IPv6)
// must get its answer from the backend, which echoes the peer address it
// saw. The Service CIDRs are fed live with SetPassCIDRs. Plain pod<->pod
// flows must keep bypassing netfilter: iptables FORWARD counters and
// nf_conntrack stay at 0 for them while the fast path is on.
func TestNetnsServices(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		servicesChild(t, os.Getenv(childEnv))
		return
	}
	runInNodeNetns(t, "TestNetnsServices")
}

// svcFamily holds one address family's plan.
type svcFamily struct {
	v6                              bool
	podA, podB, remote              netip.Addr // remote: a pod behind the uplink (in the ToR netns)
	gw                              netip.Addr // pod gateway on the host veths (masquerade source for hairpin)
	node                            netip.Addr // node address on the uplink (NodePort)
	tor                             netip.Addr // ToR address on the uplink (the NodePort client)
	vipLocal, vipRemote, vipHairpin netip.Addr
	vipClosed                       netip.Addr // DNAT to a port nobody listens on
	svcCIDR                         netip.Prefix
}

var svcFamilies = []svcFamily{{
	podA: netip.MustParseAddr("10.244.0.10"), podB: netip.MustParseAddr("10.244.0.20"),
	remote: netip.MustParseAddr("10.244.1.10"), gw: netip.MustParseAddr("10.244.0.1"),
	node: netip.MustParseAddr("192.0.2.1"), tor: netip.MustParseAddr("192.0.2.2"),
	vipLocal: netip.MustParseAddr("10.96.0.10"), vipRemote: netip.MustParseAddr("10.96.0.11"),
	vipHairpin: netip.MustParseAddr("10.96.0.12"), vipClosed: netip.MustParseAddr("10.96.0.13"),
	svcCIDR: netip.MustParsePrefix("10.96.0.0/12"),
}, {
	v6:   true,
	podA: netip.MustParseAddr("fd00:10:244::10"), podB: netip.MustParseAddr("fd00:10:244::20"),
	remote: netip.MustParseAddr("fd00:10:244:1::10"), gw: netip.MustParseAddr("fd00:10:244::1"),
	node: netip.MustParseAddr("fd00:192:2::1"), tor: netip.MustParseAddr("fd00:192:2::2"),
	vipLocal: netip.MustParseAddr("fd00:10:96::10"), vipRemote: netip.MustParseAddr("fd00:10:96::11"),
	vipHairpin: netip.MustParseAddr("fd00:10:96::12"), vipClosed: netip.MustParseAddr("fd00:10:96::13"),
	svcCIDR: netip.MustParsePrefix("fd00:10:96::/112"),
}}

const (
	svcPort        = 80    // Service port
	backendPort    = 8080  // the backends' target port
	closedPort     = 8081  // a target port nobody listens on
	directPort     = 9090  // plain pod<->pod flows (the bypass proof counts these)
	nodePortLocal  = 30080 // externalTrafficPolicy Local: DNAT only
	nodePortSNAT   = 30081 // externalTrafficPolicy Cluster: DNAT + masquerade
	masqMark       = "0x4000"
	svcDialTimeout = 2 * time.Second
)

// svcCase is one client -> target exchange and the peer the backend must
// see, or (invalid seen) a refusal the client must get: a TCP RST, or for
// UDP the ICMP port unreachable, translated back by netfilter.
type svcCase struct {
	name     string
	clientNS string
	target   netip.AddrPort
	seen     netip.Addr // source address the backend must see
}

func (f svcFamily) cases(podA, tor string) []svcCase {
	return []svcCase{
		{"direct to a local pod", podA, netip.AddrPortFrom(f.podB, directPort), f.podA},
		{"direct to a remote pod", podA, netip.AddrPortFrom(f.remote, directPort), f.podA},
		{"clusterip, local backend", podA, netip.AddrPortFrom(f.vipLocal, svcPort), f.podA},
		{"clusterip, remote backend", podA, netip.AddrPortFrom(f.vipRemote, svcPort), f.podA},
		{"clusterip hairpin (masquerade)", podA, netip.AddrPortFrom(f.vipHairpin, svcPort), f.gw},
		{"nodeport eTP=Local from outside", tor, netip.AddrPortFrom(f.node, nodePortLocal), f.tor},
		{"nodeport eTP=Cluster from outside (snat)", tor, netip.AddrPortFrom(f.node, nodePortSNAT), f.node},
		{"clusterip, backend port closed: refused", podA, netip.AddrPortFrom(f.vipClosed, svcPort), netip.Addr{}},
	}
}

// iptablesRules renders the kube-proxy-style rules for iptables/ip6tables.
func (f svcFamily) iptablesRules() [][]string {
	bin := "iptables"
	if f.v6 {
		bin = "ip6tables"
	}
	ep := func(a netip.Addr) string { return netip.AddrPortFrom(a, backendPort).String() }
	var rules [][]string
	add := func(s string) { rules = append(rules, append([]string{bin}, strings.Fields(s)...)) }
	for _, p := range []string{"tcp", "udp"} {
		add(fmt.Sprintf("-t nat -A PREROUTING -d %s -p %s --dport %d -j DNAT --to-destination %s", f.vipLocal, p, svcPort, ep(f.podB)))
		add(fmt.Sprintf("-t nat -A PREROUTING -d %s -p %s --dport %d -j DNAT --to-destination %s", f.vipRemote, p, svcPort, ep(f.remote)))
		add(fmt.Sprintf("-t nat -A PREROUTING -d %s -p %s --dport %d -j DNAT --to-destination %s", f.vipClosed, p, svcPort, netip.AddrPortFrom(f.podB, closedPort)))
		add(fmt.Sprintf("-t nat -A PREROUTING -s %s -d %s -p %s --dport %d -j MARK --set-xmark %s/%s", f.podA, f.vipHairpin, p, svcPort, masqMark, masqMark))
		add(fmt.Sprintf("-t nat -A PREROUTING -d %s -p %s --dport %d -j DNAT --to-destination %s", f.vipHairpin, p, svcPort, ep(f.podA)))
		add(fmt.Sprintf("-t nat -A PREROUTING -d %s -p %s --dport %d -j DNAT --to-destination %s", f.node, p, nodePortLocal, ep(f.podB)))
		add(fmt.Sprintf("-t nat -A PREROUTING -d %s -p %s --dport %d -j MARK --set-xmark %s/%s", f.node, p, nodePortSNAT, masqMark, masqMark))
		add(fmt.Sprintf("-t nat -A PREROUTING -d %s -p %s --dport %d -j DNAT --to-destination %s", f.node, p, nodePortSNAT, ep(f.remote)))
		// The bypass proof: plain pod<->pod flows, both directions.
		add(fmt.Sprintf("-A FORWARD -p %s --dport %d", p, directPort))
		add(fmt.Sprintf("-A FORWARD -p %s --sport %d", p, directPort))
	}
	add(fmt.Sprintf("-t nat -A POSTROUTING -m mark --mark %s/%s -j MASQUERADE", masqMark, masqMark))
	return rules
}

// nftRules renders the same as an nftables ruleset (kube-proxy's nftables
// mode uses its own ip and ip6 tables, as here).
func (f svcFamily) nftRules() string {
	fam, l3 := "ip", "ip"
	if f.v6 {
		fam, l3 = "ip6", "ip6"
	}
	ep := func(a netip.Addr) string {
		if f.v6 {
			return fmt.Sprintf("[%s]:%d", a, backendPort)
		}
		return fmt.Sprintf("%s:%d", a, backendPort)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table %s prsvc {\n chain pre {\n  type nat hook prerouting priority dstnat;\n", fam)
	for _, p := range []string{"tcp", "udp"} {
		fmt.Fprintf(&b, "  %s daddr %s %s dport %d dnat to %s\n", l3, f.vipLocal, p, svcPort, ep(f.podB))
		fmt.Fprintf(&b, "  %s daddr %s %s dport %d dnat to %s\n", l3, f.vipRemote, p, svcPort, ep(f.remote))
		fmt.Fprintf(&b, "  %s daddr %s %s dport %d dnat to %s\n", l3, f.vipClosed, p, svcPort, strings.Replace(ep(f.podB), fmt.Sprint(backendPort), fmt.Sprint(closedPort), 1))
		fmt.Fprintf(&b, "  %s saddr %s %s daddr %s %s dport %d meta mark set meta mark | %s dnat to %s\n", l3, f.podA, l3, f.vipHairpin, p, svcPort, masqMark, ep(f.podA))
		fmt.Fprintf(&b, "  %s daddr %s %s dport %d dnat to %s\n", l3, f.vipHairpin, p, svcPort, ep(f.podA))
		fmt.Fprintf(&b, "  %s daddr %s %s dport %d dnat to %s\n", l3, f.node, p, nodePortLocal, ep(f.podB))
		fmt.Fprintf(&b, "  %s daddr %s %s dport %d meta mark set meta mark | %s dnat to %s\n", l3, f.node, p, nodePortSNAT, masqMark, ep(f.remote))
	}
	fmt.Fprintf(&b, " }\n chain post {\n  type nat hook postrouting priority srcnat;\n  meta mark & %s == %s masquerade\n }\n", masqMark, masqMark)
	fmt.Fprintf(&b, " chain counts {\n  type filter hook forward priority filter;\n")
	for _, p := range []string{"tcp", "udp"} {
		fmt.Fprintf(&b, "  %s dport %d counter\n  %s sport %d counter\n", p, directPort, p, directPort)
	}
	b.WriteString(" }\n}\n")
	return b.String()
}

// inNetns runs fn on a thread inside netns name (sockets made there stay there).
func inNetns(name string, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	h, err := netns.GetFromName(name)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		return err
	}
	defer netns.Set(orig) //nolint:errcheck // checked by the next Get in this thread's users
	return fn()
}

// echoServers listens on TCP and UDP ports in netns ns; each answers
// "peer=<source address it saw>". They stop with ctx.
func echoServers(ctx context.Context, t *testing.T, ns string, addrs []netip.Addr, ports ...int) {
	t.Helper()
	for _, a := range addrs {
		for _, port := range ports {
			hp := net.JoinHostPort(a.String(), strconv.Itoa(port))
			var ln net.Listener
			var pc net.PacketConn
			err := inNetns(ns, func() (err error) {
				if ln, err = net.Listen("tcp", hp); err != nil {
					return err
				}
				pc, err = net.ListenPacket("udp", hp)
				return err
			})
			if err != nil {
				t.Fatalf("listen %s in %s: %v", hp, ns, err)
			}
			go func() { <-ctx.Done(); ln.Close(); pc.Close() }()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						defer c.Close()
						c.SetDeadline(time.Now().Add(5 * time.Second))
						if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
							fmt.Fprintf(c, "peer=%s\n", c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap())
						}
					}()
				}
			}()
			go func() {
				buf := make([]byte, 512)
				for {
					_, from, err := pc.ReadFrom(buf)
					if err != nil {
						return
					}
					pc.WriteTo(fmt.Appendf(nil, "peer=%s\n", from.(*net.UDPAddr).AddrPort().Addr().Unmap()), from) //nolint:errcheck // the client sees a loss
				}
			}()
		}
	}
}

// exchange runs one request/response from netns ns to target over proto
// ("tcp", or "udp" on a connected socket) and returns the peer the backend saw.
func exchange(ns, proto string, target netip.AddrPort) (netip.Addr, error) {
	var c net.Conn
	err := inNetns(ns, func() (err error) {
		c, err = net.DialTimeout(proto, target.String(), svcDialTimeout)
		return err
	})
	if err != nil {
		return netip.Addr{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(svcDialTimeout))
	if _, err := c.Write([]byte("hello\n")); err != nil {
		return netip.Addr{}, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return netip.Addr{}, err
	}
	s, ok := strings.CutPrefix(strings.TrimSpace(line), "peer=")
	if !ok {
		return netip.Addr{}, fmt.Errorf("answer %q", line)
	}
	return netip.ParseAddr(s)
}

// ruleMode installs and removes one proxy mode's rules in the node netns.
type ruleMode struct {
	name    string
	install func(t *testing.T)
	clear   func(t *testing.T)
}

var svcModes = []ruleMode{{
	name: "iptables",
	install: func(t *testing.T) {
		for _, f := range svcFamilies {
			for _, r := range f.iptablesRules() {
				run(t, r...)
			}
		}
	},
	clear: func(t *testing.T) {
		for _, bin := range []string{"iptables", "ip6tables"} {
			sh(t, bin+" -t nat -F", bin+" -F FORWARD")
		}
	},
}, {
	name: "nftables",
	install: func(t *testing.T) {
		for _, f := range svcFamilies {
			cmd := exec.Command("nft", "-f", "-")
			cmd.Stdin = strings.NewReader(f.nftRules())
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("nft: %v\n%s\n%s", err, out, f.nftRules())
			}
		}
	},
	clear: func(t *testing.T) { sh(t, "nft delete table ip prsvc", "nft delete table ip6 prsvc") },
}}

// bypassCounts sums the FORWARD packets of the direct flows (the rules
// counting them) and their nf_conntrack entries, in the node netns.
func bypassCounts(t *testing.T, mode string) (forwarded, conntracked int) {
	t.Helper()
	var out string
	if mode == "iptables" {
		for _, bin := range []string{"iptables", "ip6tables"} {
			out += run(t, bin, "-nvx", "-L", "FORWARD")
		}
		for _, l := range strings.Split(out, "\n") {
			if fs := strings.Fields(l); len(fs) > 2 && strings.Contains(l, strconv.Itoa(directPort)) {
				n, _ := strconv.Atoi(fs[0])
				forwarded += n
			}
		}
	} else {
		for _, fam := range []string{"ip", "ip6"} {
			out += run(t, "nft", "list", "chain", fam, "prsvc", "counts")
		}
		for _, l := range strings.Split(out, "\n") {
			if _, rest, ok := strings.Cut(l, "counter packets "); ok {
				n, _ := strconv.Atoi(strings.Fields(rest)[0])
				forwarded += n
			}
		}
	}
	for _, fam := range []string{"ipv4", "ipv6"} {
		for _, p := range []string{"tcp", "udp"} {
			for _, port := range []string{"--dport", "--sport"} {
				cmd := exec.Command("conntrack", "-L", "-f", fam, "-p", p, port, strconv.Itoa(directPort))
				o, _ := cmd.Output() // exits 0 with no entries; the count is on stdout lines
				conntracked += strings.Count(string(o), "\n")
			}
		}
	}
	return forwarded, conntracked
}

func servicesChild(t *testing.T, arg string) {
	suffix, pinDir, _ := strings.Cut(arg, ",")
	podA, podB, tor := setupNode(t, suffix)
	// IPv6 beside IPv4, ptp-style too; the remote backends live on the
	// ToR's loopback (a pod of another node, as far as this node knows).
	in := func(ns string) string { return "ip netns exec " + ns + " " }
	sh(t, "sysctl -qw net.ipv6.conf.all.forwarding=1")
	for _, p := range []struct{ ns, veth, ip string }{{podA, "vpa", "fd00:10:244::10"}, {podB, "vpb", "fd00:10:244::20"}} {
		sh(t, "ip addr add fd00:10:244::1/128 dev "+p.veth+" nodad",
			"ip -6 route add "+p.ip+"/128 dev "+p.veth,
			in(p.ns)+"ip addr add "+p.ip+"/128 dev eth0 nodad",
			in(p.ns)+"ip -6 route add fd00:10:244::1 dev eth0",
			in(p.ns)+"ip -6 route add default via fd00:10:244::1 dev eth0")
	}
	sh(t, "ip addr add fd00:192:2::1/64 dev up0 nodad", "ip -6 route add default via fd00:192:2::2",
		in(tor)+"ip addr add fd00:192:2::2/64 dev eth0 nodad",
		in(tor)+"ip addr add 10.244.1.10/32 dev lo",
		in(tor)+"ip addr add fd00:10:244:1::10/128 dev lo",
		in(tor)+"ip -6 route add fd00:10:244::/64 via fd00:192:2::1")

	// Warm up as the kernel path would before any test: no address still
	// in duplicate address detection, neighbours resolved (the first IPv6
	// exchange otherwise now and then loses its SYNs to neighbour discovery).
	waitFor(t, "no tentative IPv6 address", func() bool {
		for _, ns := range []string{"", podA, podB, tor} {
			args := []string{"-6", "addr", "show", "tentative"}
			if ns != "" {
				args = append([]string{"-n", ns}, args...)
			}
			if out, err := exec.Command("ip", args...).Output(); err != nil || strings.Contains(string(out), "inet6") {
				return false
			}
		}
		return true
	})
	for _, f := range svcFamilies {
		for _, p := range []struct{ ns, dst string }{{podA, f.podB.String()}, {podA, f.remote.String()}, {podB, f.podA.String()}, {tor, f.node.String()}} {
			run(t, "ip", "netns", "exec", p.ns, "ping", "-c", "1", "-w", "5", p.dst)
		}
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	for _, f := range svcFamilies {
		echoServers(ctx, t, podA, []netip.Addr{f.podA}, backendPort)
		echoServers(ctx, t, podB, []netip.Addr{f.podB}, backendPort, directPort)
		echoServers(ctx, t, tor, []netip.Addr{f.remote}, backendPort, directPort)
	}

	// runCases walks every case under both proxy modes and returns how many
	// were answered right; with the fast path on it also checks the bypass.
	runCases := func(fastPath string) (ok, total int) {
		for _, mode := range svcModes {
			mode.install(t)
			for _, f := range svcFamilies {
				for _, c := range f.cases(podA, tor) {
					for _, proto := range []string{"tcp", "udp"} {
						total++
						seen, err := exchange(c.clientNS, proto, c.target)
						var ne net.Error
						if proto == "udp" && errors.As(err, &ne) && ne.Timeout() {
							// One retry, on a new socket: a datagram lost on a
							// loaded machine. A missing translation fails every time.
							seen, err = exchange(c.clientNS, proto, c.target)
						}
						switch {
						case !c.seen.IsValid() && errors.Is(err, syscall.ECONNREFUSED):
							err = nil
						case !c.seen.IsValid() && err == nil:
							err = fmt.Errorf("answered by %s, want connection refused", seen)
						case err == nil && seen != c.seen:
							err = fmt.Errorf("backend saw %s, want %s", seen, c.seen)
						}
						if err != nil {
							t.Errorf("fast path %s, %s, %s %s -> %s: %v", fastPath, mode.name, proto, c.name, c.target, err)
							continue
						}
						ok++
					}
				}
			}
			if fastPath == "on" {
				fwd, ct := bypassCounts(t, mode.name)
				t.Logf("fast path on, %s: direct flows: %d FORWARD packets, %d nf_conntrack entries", mode.name, fwd, ct)
				if fwd != 0 || ct != 0 {
					t.Errorf("fast path on, %s: direct pod flows crossed netfilter: %d FORWARD packets, %d nf_conntrack entries", mode.name, fwd, ct)
				}
			} else {
				// The proof is only worth something if the counters count.
				if fwd, ct := bypassCounts(t, mode.name); fwd == 0 || ct == 0 {
					t.Errorf("fast path off, %s: bypass counters do not count (%d FORWARD, %d nf_conntrack)", mode.name, fwd, ct)
				}
			}
			mode.clear(t)
		}
		t.Logf("fast path %s: %d/%d exchanges answered with the right peer", fastPath, ok, total)
		return ok, total
	}

	if ok, total := runCases("off"); ok != total {
		t.Fatalf("kernel path: %d/%d: the harness is wrong", ok, total)
	}
	run(t, "conntrack", "-F")
	run(t, "conntrack", "-F", "-f", "ipv6")

	cfg := Config{
		PinDir:   pinDir,
		Uplinks:  []string{"up0"},
		PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/24"), netip.MustParsePrefix("fd00:10:244::/64")},
		// The static part of the pass set; the Service CIDRs come live.
		PassCIDRs:      []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
		ResyncInterval: 200 * time.Millisecond,
		CTSizeTCP:      1024, CTSizeOther: 1024,
	}
	d, _, stop := runDatapath(t, cfg)
	defer stop()
	waitFor(t, "three hooks attached", func() bool { return len(d.Status().Attached) == 3 })
	svc := []netip.Prefix{svcFamilies[0].svcCIDR, svcFamilies[1].svcCIDR}
	for range 2 { // idempotent
		if err := d.SetPassCIDRs(context.Background(), svc); err != nil {
			t.Fatal(err)
		}
	}
	got, err := d.PassCIDRs()
	if want := mergePrefixes(cfg.PassCIDRs, svc); err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pass cidrs %v (%v), want %v", got, err, want)
	}

	ok, total := runCases("on")
	c, err := d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]uint64{}
	for _, x := range c {
		byName[x.Direction+"/"+x.Reason] = x.Packets
	}
	t.Logf("counters: from-endpoint pass-nat %d, pass-prefix %d, redirect-peer %d; from-network pass-nat %d",
		byName["from-endpoint/pass-nat"], byName["from-endpoint/pass-prefix"], byName["from-endpoint/fwd-redirect-peer"], byName["from-network/pass-nat"])
	if byName["from-endpoint/pass-nat"] == 0 || byName["from-network/pass-nat"] == 0 || byName["from-endpoint/pass-prefix"] == 0 {
		t.Errorf("pass-nat/pass-prefix counters did not move: %v", byName)
	}
	ents, err := d.Conntrack()
	if err != nil {
		t.Fatal(err)
	}
	stack := 0
	for _, e := range ents {
		if e.Stack {
			stack++
		}
		if e.Stack && (e.Dst.Port() == directPort || e.Src.Port() == directPort) {
			t.Errorf("direct flow flagged stack: %+v", e)
		}
	}
	t.Logf("fast path conntrack: %d entries, %d flagged stack", len(ents), stack)
	if ok != total {
		t.Errorf("fast path on: %d/%d", ok, total)
	}
	if err := d.SetPassCIDRs(context.Background(), []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}); err == nil {
		t.Errorf("SetPassCIDRs accepted an IPv4-mapped prefix")
	}
	if got2, _ := d.PassCIDRs(); fmt.Sprint(got2) != fmt.Sprint(got) {
		t.Errorf("a refused SetPassCIDRs changed the map: %v -> %v", got, got2)
	}
	if err := d.SetPassCIDRs(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.PassCIDRs(); fmt.Sprint(got) != fmt.Sprint(cfg.PassCIDRs) {
		t.Errorf("after SetPassCIDRs(nil): %v, want the static %v", got, cfg.PassCIDRs)
	}
}
