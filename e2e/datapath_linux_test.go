package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/podrouter/podrouter/api"
	"github.com/podrouter/podrouter/lab"
)

// The eBPF fast path end to end: real CNI pods, real FRR ToR, three nodes
// running podrouter with datapath.enabled. What is checked is what an
// operator would look at: `podrouter bpf …` (pinned maps and hooks read
// directly), iptables FORWARD counters, nf_conntrack, ping/iperf3.

func upDatapathLab(t *testing.T) *lab.Lab {
	t.Helper()
	return upLab(t, 1, func(s *lab.Spec) { s.Datapath = true })
}

// bpfJSON runs `podrouter bpf ARGS --pin-dir … -o json` in node n.
func bpfJSON(t *testing.T, l *lab.Lab, n int, v any, args ...string) {
	t.Helper()
	argv := append([]string{podrouterBin, "bpf"}, args...)
	argv = append(argv, "--pin-dir", l.Spec.NodePinDir(n), "-o", "json")
	out := nodeExec(t, l, n, argv...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

func hooks(t *testing.T, l *lab.Lab, n int) map[string]api.Hook {
	t.Helper()
	var hs []api.Hook
	bpfJSON(t, l, n, &hs, "hook", "list")
	out := map[string]api.Hook{}
	for _, h := range hs {
		out[h.IfName] = h
	}
	return out
}

// hooksOK: every pod veth and up1 runs exactly one program, podrouter's
// pinned one.
func hooksOK(t *testing.T, l *lab.Lab, n, pods int) (bool, string) {
	hs := hooks(t, l, n)
	eps := 0
	for _, h := range hs {
		if !h.Pinned || len(h.Programs) != 1 || h.Programs[0] != h.PinnedID {
			return false, fmt.Sprintf("node%d hook %+v: want exactly podrouter's pinned program", n, h)
		}
		if !h.Uplink {
			eps++
		}
	}
	if h := hs["up1"]; !h.Uplink {
		return false, fmt.Sprintf("node%d: no from-network on up1: %+v", n, hs)
	}
	if eps != pods {
		return false, fmt.Sprintf("node%d: %d endpoint hooks, want %d: %+v", n, eps, pods, hs)
	}
	return true, ""
}

// forwarded sums the fast path's fwd-* counters of node n.
func forwarded(t *testing.T, l *lab.Lab, n int) uint64 {
	t.Helper()
	var cs []api.Counter
	bpfJSON(t, l, n, &cs, "stats")
	var sum uint64
	for _, c := range cs {
		if strings.HasPrefix(c.Reason, "fwd-") {
			sum += c.Packets
		}
	}
	return sum
}

func endpointAddrs(t *testing.T, l *lab.Lab, n int) map[netip.Addr]bool {
	t.Helper()
	var eps []api.Endpoint
	bpfJSON(t, l, n, &eps, "endpoint", "list")
	out := map[netip.Addr]bool{}
	for _, e := range eps {
		out[e.Address] = true
	}
	return out
}

func conntrack(t *testing.T, l *lab.Lab, n int) []api.CTEntry {
	t.Helper()
	var ct []api.CTEntry
	bpfJSON(t, l, n, &ct, "ct", "list")
	return ct
}

// A plain ruleset: FORWARD accepts through a conntrack match (so
// nf_conntrack tracks forwarded flows in the node) and counts everything.
const legacyRules = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate NEW,RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -j ACCEPT
COMMIT
`

func loadRules(t *testing.T, l *lab.Lab, n int) {
	t.Helper()
	for _, restore := range []string{"iptables-restore", "ip6tables-restore"} {
		cmd := exec.Command("ip", "netns", "exec", l.NodeNS(n), restore)
		cmd.Stdin = strings.NewReader(legacyRules)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s in node%d: %v\n%s", restore, n, err, out)
		}
	}
}

func zeroNetfilter(t *testing.T, l *lab.Lab, n int) {
	t.Helper()
	nodeExec(t, l, n, "iptables", "-Z")
	nodeExec(t, l, n, "ip6tables", "-Z")
	for _, f := range []string{"ipv4", "ipv6"} {
		l.Exec(context.Background(), l.NodeNS(n), "conntrack", "-F", "-f", f) //nolint:errcheck // empty table is fine
	}
}

// netfilterHits returns node n's FORWARD packet count (both families) and
// its nf_conntrack entries involving pod addresses.
func netfilterHits(t *testing.T, l *lab.Lab, n int) (fwd uint64, podCT int) {
	t.Helper()
	for _, ipt := range []string{"iptables", "ip6tables"} {
		out := nodeExec(t, l, n, ipt, "-nvxL", "FORWARD")
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) > 2 {
				if v, err := strconv.ParseUint(f[0], 10, 64); err == nil {
					fwd += v
				}
			}
		}
	}
	for _, f := range []string{"ipv4", "ipv6"} {
		out, _ := l.Exec(context.Background(), l.NodeNS(n), "conntrack", "-L", "-f", f) // no entries: exit 0 or 1
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "=10.0.") || strings.Contains(line, "=fd00:10:") {
				podCT++
			}
		}
	}
	return fwd, podCT
}

var iperfMu sync.Mutex // iperf3 servers use one port per pod; keep runs apart

// iperf runs a 1 s iperf3 test (TCP, or UDP at 20 Mbit/s) from srcNS to dst
// served in dstNS and returns the bytes received.
func iperf(t *testing.T, l *lab.Lab, srcNS, dstNS string, dst netip.Addr, udp bool) uint64 {
	t.Helper()
	iperfMu.Lock()
	defer iperfMu.Unlock()
	srv := exec.Command("ip", "netns", "exec", dstNS, "iperf3", "-s", "-1", "-p", "5299")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }() //nolint:errcheck // one-off server; gone when done
	args := []string{"iperf3", "-c", dst.String(), "-p", "5299", "-t", "1", "-J"}
	if udp {
		// A modest rate: this checks that UDP is carried, not how fast;
		// on a loaded 2-core VM a faster receiver falls behind and drops
		// datagrams in its socket buffer, which says nothing of the path.
		args = append(args, "-u", "-b", "5M", "-l", "1200")
	}
	var out string
	var err error
	for range 20 {
		out, err = l.Exec(context.Background(), srcNS, args...)
		// iperf3 -J may exit 0 with the error in the document.
		if !strings.Contains(out, "unable to connect") {
			break
		}
		time.Sleep(100 * time.Millisecond) // server not listening yet
	}
	if err != nil {
		t.Fatalf("iperf3 %s -> %s: %v\n%s", srcNS, dst, err, out)
	}
	var r struct {
		End struct {
			SumReceived struct{ Bytes uint64 } `json:"sum_received"`
			Sum         struct {
				Bytes       uint64
				Packets     uint64
				LostPackets uint64 `json:"lost_packets"`
			} `json:"sum"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("iperf3 json: %v\n%s", err, out)
	}
	if udp {
		s := r.End.Sum
		if s.Packets == 0 || s.LostPackets*10 > s.Packets {
			t.Errorf("UDP %s -> %s: %d of %d datagrams lost\n%s", srcNS, dst, s.LostPackets, s.Packets, out)
		}
		return s.Bytes
	}
	if r.End.SumReceived.Bytes == 0 {
		t.Errorf("TCP %s -> %s: nothing received\n%s", srcNS, dst, out)
	}
	return r.End.SumReceived.Bytes
}

type podRef struct{ node, pod int }

// traffic runs ping, TCP and UDP for both families between each pair.
func traffic(t *testing.T, l *lab.Lab, pairs [][2]podRef) {
	t.Helper()
	ctx := context.Background()
	for _, p := range pairs {
		src, dst := p[0], p[1]
		for _, f := range families {
			addr, err := l.PodIP(ctx, dst.node, dst.pod, f)
			if err != nil {
				t.Fatal(err)
			}
			srcNS, dstNS := l.PodNS(src.node, src.pod), l.PodNS(dst.node, dst.pod)
			if err := lab.Ping(ctx, srcNS, addr, 3); err != nil {
				t.Errorf("%s: %v", f, err)
			}
			tcp := iperf(t, l, srcNS, dstNS, addr, false)
			udp := iperf(t, l, srcNS, dstNS, addr, true)
			t.Logf("%s -> %s (%s): ping ok, TCP %d bytes, UDP %d bytes", srcNS, dstNS, addr, tcp, udp)
		}
	}
}

// warm sends one ping per pair and family so that nodes learn pod MACs
// (endpoints enter the map once their neighbour entry exists), then waits
// until every pod address is in its node's endpoint map.
func warm(t *testing.T, l *lab.Lab, pairs [][2]podRef) {
	t.Helper()
	ctx := context.Background()
	want := map[int][]netip.Addr{}
	for _, p := range pairs {
		for _, f := range families {
			for _, end := range p {
				a, err := l.PodIP(ctx, end.node, end.pod, f)
				if err != nil {
					t.Fatal(err)
				}
				want[end.node] = append(want[end.node], a)
			}
			a, _ := l.PodIP(ctx, p[1].node, p[1].pod, f)
			_ = lab.Ping(ctx, l.PodNS(p[0].node, p[0].pod), a, 1) // warm-up only
		}
	}
	waitFor(t, "pod addresses in the endpoint maps", 20*time.Second, func() (bool, string) {
		for n, addrs := range want {
			have := endpointAddrs(t, l, n)
			for _, a := range addrs {
				if !have[a] {
					return false, fmt.Sprintf("node%d endpoint map lacks %s: %v", n, a, have)
				}
			}
		}
		return true, ""
	})
}

func TestDatapath(t *testing.T) {
	requireLab(t)
	l := upDatapathLab(t)
	ctx := context.Background()
	for n := 1; n <= 3; n++ {
		waitFor(t, fmt.Sprintf("node%d fast path attached", n), 30*time.Second, func() (bool, string) {
			return hooksOK(t, l, n, 2)
		})
		waitFor(t, fmt.Sprintf("node%d next hops of both families", n), 30*time.Second, func() (bool, string) {
			var nhs []api.NextHop
			bpfJSON(t, l, n, &nhs, "nexthop", "list")
			fams := map[string]bool{}
			for _, nh := range nhs {
				fams[nh.Family] = true
			}
			return fams["ipv4"] && fams["ipv6"], fmt.Sprint(nhs)
		})
		loadRules(t, l, n)
	}
	cross := [2]podRef{{1, 1}, {3, 2}}
	same := [2]podRef{{2, 1}, {2, 2}}

	t.Run("pod traffic on the fast path bypasses netfilter", func(t *testing.T) {
		pairs := [][2]podRef{cross, same}
		warm(t, l, pairs)
		before := map[int]uint64{}
		for n := 1; n <= 3; n++ {
			zeroNetfilter(t, l, n)
			before[n] = forwarded(t, l, n)
		}
		traffic(t, l, pairs)
		for n := 1; n <= 3; n++ {
			fwd, ct := netfilterHits(t, l, n)
			grew := forwarded(t, l, n) - before[n]
			t.Logf("node%d: fast path forwarded +%d packets; iptables FORWARD %d packets, nf_conntrack pod entries %d", n, grew, fwd, ct)
			if fwd != 0 || ct != 0 {
				t.Errorf("node%d: pod traffic reached netfilter (FORWARD %d packets, %d conntrack entries)", n, fwd, ct)
			}
			if grew < 1000 {
				t.Errorf("node%d: fast path forwarded only %d packets", n, grew)
			}
		}
	})

	t.Run("with the fast path disabled the same traffic shows in netfilter", func(t *testing.T) {
		if err := l.StopSpeaker(ctx, 1, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		daemon, dlog, exited := startEdited(t, l, 1, "enabled: true", "enabled: false")
		defer func() {
			daemon.Process.Signal(syscall.SIGTERM) //nolint:errcheck // may have exited
			select {
			case <-exited:
			case <-time.After(15 * time.Second):
				daemon.Process.Kill() //nolint:errcheck
			}
			if t.Failed() {
				t.Logf("node1 daemon without fast path:\n%s", tailLines(dlog.String(), 20))
			}
			if err := l.StartSpeaker(ctx, 1); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "node1 fast path back", 30*time.Second, func() (bool, string) { return hooksOK(t, l, 1, 2) })
		}()
		waitFor(t, "node1 hooks detached and pins removed", 20*time.Second, func() (bool, string) {
			_, err := os.Stat(l.Spec.NodePinDir(1))
			hs := hooks(t, l, 1)
			return os.IsNotExist(err) && len(hs) == 0, fmt.Sprintf("pin dir: %v, hooks %+v", err, hs)
		})
		if !strings.Contains(dlog.String(), "removed pins left by an earlier run") {
			t.Errorf("daemon did not say it removed the old pins:\n%s", dlog.String())
		}
		zeroNetfilter(t, l, 1)
		zeroNetfilter(t, l, 3)
		traffic(t, l, [][2]podRef{cross})
		fwd, ct := netfilterHits(t, l, 1)
		fwd3, ct3 := netfilterHits(t, l, 3)
		t.Logf("kernel path on node1: iptables FORWARD %d packets, nf_conntrack pod entries %d (node3, fast path: %d, %d)", fwd, ct, fwd3, ct3)
		if fwd < 1000 || ct == 0 {
			t.Errorf("node1 without fast path: FORWARD %d packets, %d conntrack entries; want the traffic there", fwd, ct)
		}
	})

	t.Run("restart with traffic flowing loses nothing and keeps conntrack", func(t *testing.T) {
		src, dst := l.PodNS(1, 1), podRef{3, 1}
		var dsts []netip.Addr
		for _, f := range families {
			a, err := l.PodIP(ctx, dst.node, dst.pod, f)
			if err != nil {
				t.Fatal(err)
			}
			dsts = append(dsts, a)
		}
		warm(t, l, [][2]podRef{{{1, 1}, dst}})
		const count = 700 // 7 s at 100/s
		results := make(chan string, len(dsts))
		for _, a := range dsts {
			go func() {
				fam := "-4"
				if a.Is6() {
					fam = "-6"
				}
				out, err := l.Exec(ctx, src, "ping", fam, "-n", "-q", "-i", "0.01", "-c", strconv.Itoa(count), "-W", "1", a.String())
				results <- fmt.Sprintf("%s %v\n%s", a, err, out)
			}()
		}
		time.Sleep(1500 * time.Millisecond)
		hsBefore := hooks(t, l, 1)
		restart := time.Now()
		if err := l.StopSpeaker(ctx, 1, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := l.StartSpeaker(ctx, 1); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "node1 datapath reloaded", 20*time.Second, func() (bool, string) {
			b, _ := os.ReadFile(filepath.Join(l.StateDir(), "node1", "podrouter.log"))
			// After the restart: every hook carries a new program.
			hs := hooks(t, l, 1)
			for name, h := range hs {
				if h.PinnedID == hsBefore[name].PinnedID {
					return false, "program not replaced yet on " + name + "\n" + tailLines(string(b), 5)
				}
			}
			return true, ""
		})
		t.Logf("restart (SIGTERM + start + datapath reload) took %s", time.Since(restart).Round(time.Millisecond))
		for range dsts {
			r := <-results
			m := pingSummaryRE.FindStringSubmatch(r)
			if m == nil || m[1] != strconv.Itoa(count) || m[2] != m[1] {
				t.Errorf("pings lost across the restart: %s", r)
			} else {
				t.Logf("ping -i 0.01 across restart: %s", m[0])
			}
		}
		if ok, why := hooksOK(t, l, 1, 2); !ok {
			t.Errorf("after restart: %s", why)
		}
		// The pings' own conntrack entries were created before the restart
		// and carried every packet: the map survived.
		for _, a := range dsts {
			found := false
			for _, e := range conntrack(t, l, 1) {
				if e.Dst.Addr() == a && (e.Proto == 1 || e.Proto == 58) && e.Packets[0] >= count-5 {
					found = true
					if e.Age < time.Since(restart) {
						t.Errorf("CT entry for %s younger than the restart: %+v", a, e)
					}
				}
			}
			if !found {
				t.Errorf("no conntrack entry carrying all %d pings to %s after the restart", count, a)
			}
		}
	})

	t.Run("endpoint added and removed while running", func(t *testing.T) {
		pod := l.PodNS(2, 9) // matched by the lab's teardown if the test dies
		podV4, podV6 := netip.MustParseAddr("10.0.2.200"), netip.MustParseAddr("fd00:10:0:2::c8")
		run := func(ns string, argv ...string) {
			t.Helper()
			if out, err := l.Exec(ctx, ns, argv...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		}
		if out, err := exec.Command("ip", "netns", "add", pod).CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		defer exec.Command("ip", "netns", "del", pod).Run() //nolint:errcheck // deleted below already
		run(pod, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.accept_dad=0")
		// What the ptp plugin does: a veth, the pod gateway on the host
		// side, a host route per pod address.
		run(l.NodeNS(2), "ip", "link", "add", "vethe2e9", "type", "veth", "peer", "name", "eth0", "netns", pod)
		for _, c := range [][]string{
			{"ip", "link", "set", "vethe2e9", "up"},
			{"ip", "addr", "add", "10.0.2.1/32", "dev", "vethe2e9"},
			{"ip", "-6", "addr", "add", "fd00:10:0:2::1/128", "dev", "vethe2e9", "nodad"},
			{"ip", "route", "add", podV4.String() + "/32", "dev", "vethe2e9"},
			{"ip", "-6", "route", "add", podV6.String() + "/128", "dev", "vethe2e9"},
		} {
			run(l.NodeNS(2), c...)
		}
		for _, c := range [][]string{
			{"ip", "link", "set", "lo", "up"},
			{"ip", "link", "set", "eth0", "up"},
			{"ip", "addr", "add", podV4.String() + "/32", "dev", "eth0"},
			{"ip", "-6", "addr", "add", podV6.String() + "/128", "dev", "eth0", "nodad"},
			{"ip", "route", "add", "10.0.2.1", "dev", "eth0", "scope", "link"},
			{"ip", "route", "add", "default", "via", "10.0.2.1", "dev", "eth0"},
			{"ip", "-6", "route", "add", "fd00:10:0:2::1", "dev", "eth0"},
			{"ip", "-6", "route", "add", "default", "via", "fd00:10:0:2::1", "dev", "eth0"},
		} {
			run(pod, c...)
		}
		waitFor(t, "from-endpoint attached to the new pod's veth", 15*time.Second, func() (bool, string) {
			return hooksOK(t, l, 2, 3)
		})
		for _, a := range []netip.Addr{podV4, podV6} {
			if err := lab.Ping(ctx, l.PodNS(1, 1), a, 2); err != nil {
				t.Errorf("to the new pod: %v", err)
			}
		}
		waitFor(t, "new pod in node2's endpoint map", 15*time.Second, func() (bool, string) {
			eps := endpointAddrs(t, l, 2)
			return eps[podV4] && eps[podV6], fmt.Sprint(eps)
		})
		before := forwarded(t, l, 2)
		for _, a := range []netip.Addr{podV4, podV6} {
			if err := lab.Ping(ctx, l.PodNS(1, 1), a, 3); err != nil {
				t.Errorf("to the new pod: %v", err)
			}
		}
		if grew := forwarded(t, l, 2) - before; grew < 12 {
			t.Errorf("node2 fast path forwarded %d packets for 6 pings to and from the new pod", grew)
		}
		// CNI DEL equivalent: the pod's namespace goes, its veth with it.
		if out, err := exec.Command("ip", "netns", "del", pod).CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		waitFor(t, "removed pod gone from the endpoint map and hooks", 15*time.Second, func() (bool, string) {
			eps := endpointAddrs(t, l, 2)
			_, hooked := hooks(t, l, 2)["vethe2e9"]
			ok, why := hooksOK(t, l, 2, 2)
			return ok && !eps[podV4] && !eps[podV6] && !hooked, fmt.Sprintf("%s; endpoints %v", why, eps)
		})
	})

	t.Run("pin dir not on bpffs: kernel path, daemon keeps running", func(t *testing.T) {
		if err := l.StopSpeaker(ctx, 3, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		notBPF := filepath.Join(l.StateDir(), "node3", "notbpffs") // tmpfs
		daemon, dlog, exited := startEdited(t, l, 3, "pinDir: "+l.Spec.NodePinDir(3), "pinDir: "+notBPF)
		waitFor(t, "fallback logged", 15*time.Second, func() (bool, string) {
			return strings.Contains(dlog.String(), "ebpf fast path unavailable"), dlog.String()
		})
		t.Logf("fallback: %s", grepLine(dlog.String(), "ebpf fast path unavailable"))
		if !strings.Contains(dlog.String(), "not on a bpf filesystem") {
			t.Errorf("fallback does not say why:\n%s", dlog.String())
		}
		a, _ := l.PodIP(ctx, 3, 1, lab.IPv4)
		if err := lab.Ping(ctx, l.PodNS(1, 1), a, 3); err != nil {
			t.Errorf("kernel path after fallback: %v", err)
		}
		select {
		case err := <-exited:
			t.Fatalf("daemon exited after the fallback: %v\n%s", err, dlog.String())
		default:
		}
		daemon.Process.Signal(syscall.SIGTERM) //nolint:errcheck // running, checked above
		<-exited
		if err := l.StartSpeaker(ctx, 3); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("drain detaches and unpins", func(t *testing.T) {
		if _, err := l.Exec(ctx, l.NodeNS(2), podrouterBin, "drain", "--socket", socket(l, 2)); err != nil {
			t.Fatalf("podrouter drain: %v", err)
		}
		waitFor(t, "node2 pins and hooks gone", 10*time.Second, func() (bool, string) {
			_, err := os.Stat(l.Spec.NodePinDir(2))
			hs := hooks(t, l, 2)
			return os.IsNotExist(err) && len(hs) == 0, fmt.Sprintf("pin dir: %v, hooks %+v", err, hs)
		})
		// Same-node pod traffic still works on the kernel path.
		a, _ := l.PodIP(ctx, 2, 2, lab.IPv4)
		if err := lab.Ping(ctx, l.PodNS(2, 1), a, 2); err != nil {
			t.Errorf("after drain: %v", err)
		}
	})
}

// syncBuffer is a strings.Builder safe for a writing child and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func grepLine(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
