package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/podrouter/podrouter/api"
	"github.com/podrouter/podrouter/lab"
)

// The operator surface on a datapath lab: `podrouter monitor` follows a
// ping hop by hop on both nodes and shows a drop, `podrouter bpf ct
// list|flush` finds and deletes the ping's conntrack entry, `podrouter
// status` shows the attached programs and conntrack usage.

// monEvent is one line of `podrouter monitor -o json`.
type monEvent = api.MonitorEvent

// evString is one event on one line, for messages.
func evString(e monEvent) string {
	return fmt.Sprintf("%s ct=%s reason=%s on %s(%d) target %s(%d) endpoint %d proto %d %s -> %s",
		e.Type, e.CTVerdict, e.Reason, e.IfName, e.IfIndex, e.TargetName, e.Target, e.EndpointID, e.Proto, e.Src, e.Dst)
}

// monitor is a running `podrouter monitor -o json` in a node.
type monitor struct {
	node   int
	mu     sync.Mutex
	events []monEvent
	stderr syncBuffer
}

func startMonitor(t *testing.T, l *lab.Lab, n int) *monitor {
	t.Helper()
	m := &monitor{node: n}
	// ip netns exec execs podrouter: the process we kill is the monitor.
	cmd := exec.Command("ip", "netns", "exec", l.NodeNS(n), podrouterBin, "monitor", "-o", "json", "--socket", socket(l, n))
	cmd.Stderr = &m.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var ev monEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev = monEvent{Error: "undecodable: " + sc.Text()}
			}
			m.mu.Lock()
			m.events = append(m.events, ev)
			m.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill() //nolint:errcheck // may have exited on its own
		<-done
		cmd.Wait() //nolint:errcheck // killed
	})
	waitFor(t, fmt.Sprintf("node%d monitor listening", n), 10*time.Second, func() (bool, string) {
		return strings.Contains(m.stderr.String(), "Listening for datapath events"), m.stderr.String()
	})
	return m
}

func (m *monitor) snapshot() []monEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]monEvent(nil), m.events...)
}

func (m *monitor) dump(filter func(monEvent) bool) string {
	var b strings.Builder
	for _, e := range m.snapshot() {
		if filter(e) {
			fmt.Fprintf(&b, "  node%d: %s\n", m.node, evString(e))
		}
	}
	if s := m.stderr.String(); strings.Contains(s, "error") {
		fmt.Fprintf(&b, "  node%d stderr: %s\n", m.node, s)
	}
	return b.String()
}

// index returns the position of the first event at or after from that
// satisfies f, or -1.
func index(evs []monEvent, from int, f func(monEvent) bool) int {
	for i := max(from, 0); i < len(evs); i++ {
		if f(evs[i]) {
			return i
		}
	}
	return -1
}

// step is one expected event of a packet's path through a node.
type step struct {
	what string
	f    func(monEvent) bool
}

// follow finds steps in order, each after the previous one, from position
// from on. It returns "" when all are seen, else the first missing step.
func follow(evs []monEvent, from int, steps ...step) string {
	at := from - 1
	for _, s := range steps {
		if at = index(evs, at+1, s.f); at < 0 {
			return s.what
		}
	}
	return ""
}

// endpointIfIndex is the host-side veth of pod address a in node n's
// endpoint map.
func endpointIfIndex(t *testing.T, l *lab.Lab, n int, a netip.Addr) int {
	t.Helper()
	var eps []api.Endpoint
	bpfJSON(t, l, n, &eps, "endpoint", "list")
	for _, e := range eps {
		if e.Address == a {
			return e.IfIndex
		}
	}
	t.Fatalf("node%d endpoint map lacks %s: %+v", n, a, eps)
	return 0
}

// sendRawIn sends payload to dst over a raw IPv4 socket of protocol proto
// opened in network namespace ns: the kernel adds a valid IPv4 header, the
// payload is the L4 "header" as given.
func sendRawIn(t *testing.T, ns string, proto int, dst netip.Addr, payload []byte) {
	t.Helper()
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread stays locked and in ns: the runtime discards it when
		// this goroutine ends, nothing else ever runs in the pod's netns.
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns)
		if err != nil {
			ch <- result{-1, err}
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			ch <- result{-1, err}
			return
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, proto)
		ch <- result{fd, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("raw socket in %s: %v", ns, r.err)
	}
	defer unix.Close(r.fd)
	if err := unix.Sendto(r.fd, payload, 0, &unix.SockaddrInet4{Addr: dst.As4()}); err != nil {
		t.Fatalf("send raw packet from %s to %s: %v", ns, dst, err)
	}
}

// bpfText runs `podrouter bpf ARGS --pin-dir …` (table output) in node n.
func bpfText(t *testing.T, l *lab.Lab, n int, args ...string) string {
	t.Helper()
	argv := append([]string{podrouterBin, "bpf"}, args...)
	return nodeExec(t, l, n, append(argv, "--pin-dir", l.Spec.NodePinDir(n))...)
}

func TestObserve(t *testing.T) {
	requireLab(t)
	l := upDatapathLab(t)
	ctx := context.Background()
	for _, n := range []int{1, 3} {
		waitFor(t, fmt.Sprintf("node%d fast path attached", n), 30*time.Second, func() (bool, string) {
			return hooksOK(t, l, n, 2)
		})
	}
	src, remote, local := podRef{1, 1}, podRef{3, 1}, podRef{1, 2}
	warm(t, l, [][2]podRef{{src, remote}, {src, local}})
	ip := func(p podRef) netip.Addr {
		a, err := l.PodIP(ctx, p.node, p.pod, lab.IPv4)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	pod1, pod3, pod1b := ip(src), ip(remote), ip(local)
	veth1, veth1b := endpointIfIndex(t, l, 1, pod1), endpointIfIndex(t, l, 1, pod1b)
	veth3 := endpointIfIndex(t, l, 3, pod3)
	m1, m3 := startMonitor(t, l, 1), startMonitor(t, l, 3)
	icmp := func(from, to netip.Addr) func(monEvent) bool {
		return func(e monEvent) bool { return e.Proto == 1 && e.Src.Addr() == from && e.Dst.Addr() == to }
	}
	and := func(fs ...func(monEvent) bool) func(monEvent) bool {
		return func(e monEvent) bool {
			for _, f := range fs {
				if !f(e) {
					return false
				}
			}
			return true
		}
	}
	is := func(typ, verdict string) func(monEvent) bool {
		return func(e monEvent) bool { return e.Type == typ && e.CTVerdict == verdict }
	}
	echoID := func(id uint16) func(monEvent) bool {
		return func(e monEvent) bool { return e.Src.Port() == id }
	}

	onIf := func(idx int) func(monEvent) bool { return func(e monEvent) bool { return e.IfIndex == idx } }
	onUp := func(e monEvent) bool { return e.IfName == "up1" }
	into := func(idx int) func(monEvent) bool { return func(e monEvent) bool { return e.Target == idx } }
	viaUp := func(e monEvent) bool { return e.TargetName == "up1" }
	fromPod := func(e monEvent) bool { return e.EndpointID != 0 } // source endpoint id

	t.Run("monitor follows a cross-node ping on both nodes", func(t *testing.T) {
		// Tracing starts just after the monitor says it listens, and every
		// ping process is a new flow (new echo id): ping until one flow is
		// seen whole. As in `cilium monitor`, every hop shows an ingress
		// event after conntrack (from-endpoint on a pod veth, from-network
		// on the uplink) then an egress event (to-network, to-endpoint).
		var why string
		for attempt := range 5 {
			if err := lab.Ping(ctx, l.PodNS(1, 1), pod3, 2); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond) // events in flight
			e1, e3 := m1.snapshot(), m3.snapshot()
			req := index(e1, 0, and(icmp(pod1, pod3), is("from-endpoint", "new"), onIf(veth1)))
			if req < 0 {
				why = fmt.Sprintf("attempt %d: node1 shows no from-endpoint (ct new) on n1p1's veth (ifindex %d)", attempt, veth1)
				continue
			}
			id := e1[req].Src.Port()
			flow := func(from, to netip.Addr) func(monEvent) bool { return and(icmp(from, to), echoID(id)) }
			missing := []string{
				follow(e1, req,
					step{"node1: request from-endpoint (ct new) on n1p1's veth with its endpoint id",
						and(flow(pod1, pod3), is("from-endpoint", "new"), onIf(veth1), fromPod)},
					step{"node1: request to-network (ct new) from n1p1's veth via up1",
						and(flow(pod1, pod3), is("to-network", "new"), onIf(veth1), viaUp)},
					step{"node1: reply from-network (ct reply) on up1",
						and(flow(pod3, pod1), is("from-network", "reply"), onUp)},
					step{"node1: reply to-endpoint (ct reply) into n1p1's veth",
						and(flow(pod3, pod1), is("to-endpoint", "reply"), onUp, into(veth1))}),
				follow(e3, 0,
					step{"node3: request from-network (ct new) on up1",
						and(flow(pod1, pod3), is("from-network", "new"), onUp)},
					step{"node3: request to-endpoint (ct new) into n3p1's veth",
						and(flow(pod1, pod3), is("to-endpoint", "new"), onUp, into(veth3))},
					step{"node3: reply from-endpoint (ct reply) on n3p1's veth",
						and(flow(pod3, pod1), is("from-endpoint", "reply"), onIf(veth3), fromPod)},
					step{"node3: reply to-network (ct reply) from n3p1's veth via up1",
						and(flow(pod3, pod1), is("to-network", "reply"), onIf(veth3), viaUp)}),
			}
			why = ""
			for _, m := range missing {
				if m != "" {
					why += fmt.Sprintf("attempt %d, echo id %d: missing %s (in order)\n", attempt, id, m)
				}
			}
			if why == "" {
				t.Logf("echo id %d seen hop by hop:\n%s%s", id, m1.dump(echoID(id)), m3.dump(echoID(id)))
				return
			}
		}
		t.Errorf("%s\nevents:\n%s%s", why, m1.dump(icmp(pod1, pod3)), m3.dump(icmp(pod1, pod3)))
	})

	t.Run("monitor shows a same-node ping as from-endpoint then to-endpoint, new then reply", func(t *testing.T) {
		var why string
		for attempt := range 5 {
			if err := lab.Ping(ctx, l.PodNS(1, 1), pod1b, 2); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			e1 := m1.snapshot()
			req := index(e1, 0, and(icmp(pod1, pod1b), is("from-endpoint", "new"), onIf(veth1)))
			if req < 0 {
				why = fmt.Sprintf("attempt %d: no from-endpoint (ct new) on n1p1's veth towards n1p2", attempt)
				continue
			}
			id := e1[req].Src.Port()
			flow := func(from, to netip.Addr) func(monEvent) bool { return and(icmp(from, to), echoID(id)) }
			why = follow(e1, req+1,
				step{"request to-endpoint (ct new) from n1p1's veth into n1p2's",
					and(flow(pod1, pod1b), is("to-endpoint", "new"), onIf(veth1), into(veth1b))},
				step{"reply from-endpoint (ct reply) on n1p2's veth",
					and(flow(pod1b, pod1), is("from-endpoint", "reply"), onIf(veth1b), fromPod)},
				step{"reply to-endpoint (ct reply) from n1p2's veth into n1p1's",
					and(flow(pod1b, pod1), is("to-endpoint", "reply"), onIf(veth1b), into(veth1))})
			if why == "" {
				return
			}
			why = fmt.Sprintf("attempt %d, echo id %d: missing %s (in order)", attempt, id, why)
		}
		t.Errorf("%s\nevents:\n%s", why, m1.dump(func(e monEvent) bool { return e.Src.Addr() == pod1b || e.Dst.Addr() == pod1b }))
	})

	t.Run("monitor shows a drop of a malformed packet", func(t *testing.T) {
		// A UDP "header" of 4 bytes: the IPv4 header is valid, the L4
		// header truncated. from-endpoint drops it as drop-malformed.
		before := dropMalformed(t, l, 1)
		dropped := func(e monEvent) bool {
			return e.Type == "drop" && e.Reason == "drop-malformed" && e.Proto == 17 && e.IfIndex == veth1 &&
				e.Src.Addr() == pod1 && e.Dst.Addr() == pod3
		}
		waitFor(t, "a drop event on node1", 10*time.Second, func() (bool, string) {
			sendRawIn(t, l.PodNS(1, 1), unix.IPPROTO_UDP, pod3, []byte{0xde, 0xad, 0xbe, 0xef})
			time.Sleep(100 * time.Millisecond)
			return index(m1.snapshot(), 0, dropped) >= 0, m1.dump(func(e monEvent) bool { return e.Type == "drop" || e.Proto == 17 })
		})
		t.Logf("drop seen:\n%s", m1.dump(dropped))
		if after := dropMalformed(t, l, 1); after <= before {
			t.Errorf("bpf stats: from-endpoint drop-malformed %d before, %d after the malformed packet", before, after)
		}
		if got := index(m3.snapshot(), 0, func(e monEvent) bool { return e.Proto == 17 && e.Src.Addr() == pod1 }); got >= 0 {
			t.Errorf("the malformed packet reached node3: %s", evString(m3.snapshot()[got]))
		}
	})

	t.Run("status shows the attached programs and conntrack usage", func(t *testing.T) {
		// A fresh same-node ping: an ICMP entry in ct_other for sure.
		if err := lab.Ping(ctx, l.PodNS(1, 1), pod1b, 1); err != nil {
			t.Fatal(err)
		}
		out := nodeExec(t, l, 1, podrouterBin, "status", "--socket", socket(l, 1))
		t.Logf("podrouter status:\n%s", out)
		for _, re := range []string{
			`(?m)^Datapath:\s+ebpf \(fast path active, pins in ` + regexp.QuoteMeta(l.Spec.NodePinDir(1)) + `\)$`,
			`(?m)^Fast path:\s+3 programs attached: from-network on up1; from-endpoint on 2 interfaces \(\S+, \S+\)$`,
			`(?m)^Endpoints:\s+2 pods hooked, [2-9]/\d+ addresses in the endpoint map$`,
			`(?m)^Conntrack:\s+tcp \d+/\d+ \(\d+\.\d%\), other [1-9]\d*/\d+ \(\d+\.\d%\)$`,
		} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("status does not match %s", re)
			}
		}
		fp := nodeStatus(t, l, 1).FastPath
		usage := map[string][2]int{}
		for _, m := range fp.Maps {
			usage[m.Map] = [2]int{m.Entries, m.Capacity}
		}
		if fp.Mode != api.ModeEBPF || strings.Join(fp.FromNetwork, ",") != "up1" || len(fp.FromEndpoint) != 2 ||
			usage["ct_other"][0] < 1 || usage["ct_other"][1] < usage["ct_other"][0] || usage["ct_tcp"][1] == 0 || usage["endpoints"][0] < 2 {
			t.Errorf("status -o json fast path: %+v", fp)
		}
	})

	t.Run("bpf ct list and flush by address", func(t *testing.T) {
		if err := lab.Ping(ctx, l.PodNS(1, 1), pod3, 2); err != nil {
			t.Fatal(err)
		}
		if err := lab.Ping(ctx, l.PodNS(1, 1), pod1b, 1); err != nil {
			t.Fatal(err)
		}
		list := func(args ...string) []api.CTEntry {
			var ct []api.CTEntry
			bpfJSON(t, l, 1, &ct, append([]string{"ct", "list"}, args...)...)
			return ct
		}
		ct := list("--ip", pod3.String())
		found := false
		for _, e := range ct {
			if e.Dst.Addr() != pod3 && e.Src.Addr() != pod3 {
				t.Errorf("ct list --ip %s returned %+v", pod3, e)
			}
			if e.Proto == 1 && e.Src.Addr() == pod1 && e.Dst.Addr() == pod3 && e.Packets[0] >= 2 && e.Packets[1] >= 2 {
				found = true
			}
		}
		if !found {
			t.Errorf("ct list --ip %s: no ICMP entry %s -> %s carrying the pings: %+v", pod3, pod1, pod3, ct)
		}
		table := bpfText(t, l, 1, "ct", "list", "--ip", pod3.String(), "--proto", "icmp")
		t.Logf("podrouter bpf ct list --ip %s --proto icmp:\n%s", pod3, table)
		if !regexp.MustCompile(`(?m)^icmp\s+` + regexp.QuoteMeta(pod1.String()) + `\s+` + regexp.QuoteMeta(pod3.String()) + `\s+\S+\s+\d+/\d+\s.*seen-reply`).MatchString(table) {
			t.Errorf("ct list table lacks the ping's entry")
		}
		if tcp := list("--ip", pod3.String(), "--proto", "tcp"); len(tcp) != 0 {
			t.Errorf("ct list --ip %s --proto tcp: want nothing, got %+v", pod3, tcp)
		}
		others := len(list("--ip", pod1b.String()))
		if others == 0 {
			t.Fatalf("no conntrack entry for %s to survive the flush", pod1b)
		}
		var res struct{ Deleted int }
		bpfJSON(t, l, 1, &res, "ct", "flush", "--ip", pod3.String())
		if res.Deleted < 1 {
			t.Errorf("ct flush --ip %s deleted %d entries", pod3, res.Deleted)
		}
		if left := list("--ip", pod3.String()); len(left) != 0 {
			t.Errorf("after ct flush --ip %s: %+v", pod3, left)
		}
		if n := len(list("--ip", pod1b.String())); n != others {
			t.Errorf("ct flush --ip %s touched other flows: %d entries for %s, had %d", pod3, n, pod1b, others)
		}
		// The flow starts over: the next ping is a new entry, nothing lost.
		if err := lab.Ping(ctx, l.PodNS(1, 1), pod3, 2); err != nil {
			t.Errorf("after flush: %v", err)
		}
		if again := list("--ip", pod3.String()); len(again) == 0 {
			t.Errorf("no new conntrack entry for %s after the flush", pod3)
		}
	})
}

// dropMalformed is node n's from-endpoint drop-malformed packet counter.
func dropMalformed(t *testing.T, l *lab.Lab, n int) uint64 {
	t.Helper()
	var cs []api.Counter
	bpfJSON(t, l, n, &cs, "stats", "--all")
	for _, c := range cs {
		if c.Direction == "from-endpoint" && c.Reason == "drop-malformed" {
			return c.Packets
		}
	}
	t.Fatalf("node%d: no from-endpoint drop-malformed counter: %+v", n, cs)
	return 0
}
