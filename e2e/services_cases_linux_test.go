package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podrouter/podrouter/health"
	"github.com/podrouter/podrouter/lab"
)

// The longer cases of TestKubernetesServices.

// persistent holds one TCP connection from pod n1p1 through the "persist"
// Service (backends n2p1 and n3p1) and sends a request every 50 ms while
// node1's podrouter is restarted (SIGTERM), crashed (kill -9) and
// restarted, and the Service's other backend leaves and comes back. Every
// request must be answered, always by the same backend. One result per
// phase.
func (fx *serviceFixture) persistent(t *testing.T) [3]error {
	l := fx.l
	ctx := context.Background()
	dst := netip.AddrPortFrom(fx.ips["persist"][0], lab.BackendEchoPort)
	e, err := dialEcho(ctx, l.PodNS(1, 1), "tcp", dst)
	if err != nil {
		return [3]error{err, err, err}
	}
	defer e.Close()
	first, err := e.roundTrip()
	if err != nil {
		return [3]error{err, err, err}
	}
	other := [2]int{3, 1}
	if first.backend == lab.PodName(3, 1) {
		other = [2]int{2, 1}
	}
	var (
		mu     sync.Mutex
		phase  int
		count  [3]int
		errs   [3]error
		broken bool
	)
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			a, err := e.roundTrip()
			mu.Lock()
			switch {
			case err != nil:
				errs[phase], broken = err, true
			case a.backend != first.backend:
				errs[phase], broken = fmt.Errorf("the connection moved from %s to %s", first.backend, a.backend), true
			default:
				count[phase]++
			}
			mu.Unlock()
			if broken {
				return
			}
		}
	}()
	setPhase := func(p int) {
		mu.Lock()
		phase = p
		mu.Unlock()
	}
	finished := false
	finish := func() [3]error {
		finished = true
		close(done)
		<-stopped
		mu.Lock()
		defer mu.Unlock()
		var out [3]error
		for p := range 3 {
			switch {
			case errs[p] != nil:
				out[p] = errs[p]
			case p > phase:
				out[p] = errors.New("not reached")
			case broken:
				out[p] = errors.New("the connection broke in an earlier phase")
			case count[p] < 5:
				out[p] = fmt.Errorf("only %d requests answered in this phase", count[p])
			}
		}
		t.Logf("persistent connection to %s answered by %s: %v requests per phase", dst, first.backend, count)
		return out
	}
	defer func() {
		if !finished {
			finish() // a t.Fatal in a phase: stop the requests, log what was seen
		}
	}()
	restartPodrouter(t, l, 1, syscall.SIGTERM)
	time.Sleep(500 * time.Millisecond)
	setPhase(1)
	restartPodrouter(t, l, 1, syscall.SIGKILL)
	time.Sleep(500 * time.Millisecond)
	setPhase(2)
	if err := l.SetPodReady(ctx, other[0], other[1], false); err != nil {
		t.Fatal(err)
	}
	fx.waitEndpoints(t, "persist", 1)
	time.Sleep(2 * time.Second) // kube-proxy resyncs at most every second
	if err := l.SetPodReady(ctx, other[0], other[1], true); err != nil {
		t.Fatal(err)
	}
	fx.waitEndpoints(t, "persist", 2)
	time.Sleep(2 * time.Second)
	return finish()
}

// bypass runs ping, TCP and UDP (iperf3) for both families between pods on
// two nodes and on one node, counting in every node's iptables FORWARD
// (a rule matching pod to pod) and nf_conntrack (entries of those flows).
// With the fast path both stay at 0 while the fast path forwards; without
// it the same traffic shows there (the control).
func (fx *serviceFixture) bypass(t *testing.T, fast bool) error {
	l := fx.l
	ctx := context.Background()
	pairs := [][2]podRef{{{1, 1}, {3, 2}}, {{2, 1}, {2, 2}}}
	if fast {
		warm(t, l, pairs)
	}
	const tag = "podrouter-e2e-pod-to-pod"
	cc := lab.ClusterCIDRs()
	rule := func(ipt, op string, cidr netip.Prefix) []string {
		argv := []string{ipt, op, "FORWARD"}
		if op == "-I" {
			argv = append(argv, "1")
		}
		return append(argv, "-s", cidr.String(), "-d", cidr.String(), "-m", "comment", "--comment", tag)
	}
	for n := 1; n <= 3; n++ {
		nodeExec(t, l, n, rule("iptables", "-I", cc[0])...)
		nodeExec(t, l, n, rule("ip6tables", "-I", cc[1])...)
		defer func() {
			_, _ = l.Exec(ctx, l.NodeNS(n), rule("iptables", "-D", cc[0])...)  // the namespace goes with the lab anyway
			_, _ = l.Exec(ctx, l.NodeNS(n), rule("ip6tables", "-D", cc[1])...) //
		}()
	}
	type flow struct {
		fam      string
		src, dst netip.Addr
	}
	var flows []flow
	for _, p := range pairs {
		for _, f := range families {
			a, err := l.PodIP(ctx, p[0].node, p[0].pod, f)
			if err != nil {
				return err
			}
			b, err := l.PodIP(ctx, p[1].node, p[1].pod, f)
			if err != nil {
				return err
			}
			flows = append(flows, flow{f.String(), a, b})
		}
	}
	ctCount := func(n int) int {
		c := 0
		for _, fl := range flows {
			out, _ := l.Exec(ctx, l.NodeNS(n), "conntrack", "-L", "-f", fl.fam, "-s", fl.src.String(), "-d", fl.dst.String()) // none: exit 1
			for _, line := range strings.Split(out, "\n") {
				if strings.TrimSpace(line) != "" {
					c++
				}
			}
		}
		return c
	}
	fwdCount := func(n int) uint64 {
		var sum uint64
		for _, ipt := range []string{"iptables", "ip6tables"} {
			for _, line := range strings.Split(nodeExec(t, l, n, ipt, "-nvxL", "FORWARD"), "\n") {
				if f := strings.Fields(line); len(f) > 0 && strings.Contains(line, tag) {
					v, err := strconv.ParseUint(f[0], 10, 64)
					if err == nil {
						sum += v
					}
				}
			}
		}
		return sum
	}
	before := map[int][2]uint64{}
	for n := 1; n <= 3; n++ {
		for _, fl := range flows {
			_, _ = l.Exec(ctx, l.NodeNS(n), "conntrack", "-D", "-f", fl.fam, "-s", fl.src.String(), "-d", fl.dst.String()) // none: exit 1
		}
		var fp uint64
		if fast {
			fp = forwarded(t, l, n)
		}
		before[n] = [2]uint64{fwdCount(n), fp}
	}
	traffic(t, l, pairs)
	var errs []error
	for n := 1; n <= 3; n++ {
		fwd, ct := fwdCount(n)-before[n][0], ctCount(n)
		if !fast {
			t.Logf("node%d kernel path: iptables FORWARD +%d packets, %d nf_conntrack entries of these flows", n, fwd, ct)
			if n != 2 && (fwd < 1000 || ct == 0) {
				errs = append(errs, fmt.Errorf("node%d kernel path: FORWARD +%d, %d conntrack entries: the control does not see the traffic", n, fwd, ct))
			}
			continue
		}
		grew := forwarded(t, l, n) - before[n][1]
		t.Logf("node%d fast path: forwarded +%d packets; iptables FORWARD +%d packets, %d nf_conntrack entries of these flows", n, grew, fwd, ct)
		if fwd != 0 || ct != 0 {
			errs = append(errs, fmt.Errorf("node%d: pod traffic reached netfilter (FORWARD +%d packets, %d conntrack entries)", n, fwd, ct))
		}
		if grew < 1000 {
			errs = append(errs, fmt.Errorf("node%d: the fast path forwarded only %d packets", n, grew))
		}
	}
	return errors.Join(errs...)
}

// newPod: pods created while everything runs (a new Pod's sandbox: CNI
// ADD on node2, the fast path attached to its veth) send their very first
// packets to pods on other nodes: one opens a TCP connection (IPv4), the
// other pings (IPv6); both must be answered at once, and again once the
// fast path has hooked the pod. The trap: the fast path forwarding a new
// pod's requests while its replies, before podrouter has learnt the pod's
// MAC (hence its endpoint entry), go to the stack, which never saw the
// requests (kube-proxy's iptables mode drops such conntrack-INVALID
// packets in FORWARD). A dropped SYN-ACK costs a 1 s retransmit, a dropped
// echo reply the ping.
func (fx *serviceFixture) newPod(t *testing.T, fast bool) error {
	l := fx.l
	ctx := context.Background()
	const n = 2
	var errs []error
	for i, check := range []func(ns string) error{fx.firstConnect, fx.firstPing} {
		p := l.Spec.PodsPerNode + 1 + i
		if err := l.AddPod(ctx, n, p); err != nil {
			return err
		}
		defer func() {
			if err := l.DeletePod(ctx, n, p); err != nil {
				t.Errorf("delete the new pod: %v", err)
			}
		}()
		// At once, whatever path the first packets take (podrouter hooks
		// a pod once the node has seen its MAC, i.e. after its first
		// packets: until then both directions take the kernel path).
		errs = append(errs, check(l.PodNS(n, p)))
		if fast {
			waitFor(t, "from-endpoint on the new pod's veth", 15*time.Second, func() (bool, string) { return hooksOK(t, l, n, p) })
			errs = append(errs, check(l.PodNS(n, p))) // and again on the fast path
		}
	}
	return errors.Join(errs...)
}

// firstConnect: ns's first packet is a TCP SYN to pod n1p2 (IPv4); the
// connection must not need a retransmit.
func (fx *serviceFixture) firstConnect(ns string) error {
	ctx := context.Background()
	dst, err := fx.l.PodIP(ctx, 1, 2, lab.IPv4)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	c, err := lab.DialIn(dctx, ns, "tcp", netip.AddrPortFrom(dst, lab.BackendEchoPort).String())
	took := time.Since(start)
	if err != nil {
		return fmt.Errorf("a new pod's first TCP connection to %s: %w", dst, err)
	}
	c.Close()
	if took > 500*time.Millisecond {
		return fmt.Errorf("a new pod's first TCP connection to %s took %s: its SYN or SYN-ACK was lost and retransmitted", dst, took.Round(time.Millisecond))
	}
	return nil
}

// firstPing: ns's first packet is an echo request to pod n3p1 (IPv6); its
// reply must come.
func (fx *serviceFixture) firstPing(ns string) error {
	dst, err := fx.l.PodIP(context.Background(), 3, 1, lab.IPv6)
	if err != nil {
		return err
	}
	if out, err := fx.l.Exec(context.Background(), ns, "ping", "-6", "-n", "-c", "1", "-W", "2", dst.String()); err != nil {
		return fmt.Errorf("a new pod's first ping to %s unanswered: %v\n%s", dst, err, out)
	}
	return nil
}

// serviceCIDRLive: with the fast path on, a pod sends UDP to an address of
// a range that is not (yet) a Service CIDR every 20 ms. Before the range
// is a ServiceCIDR nothing may reach node1's stack (raw PREROUTING counts
// 0: the fast path sends it to the ToR); after the ServiceCIDR object is
// created it must be handed to the stack within a second, and after it is
// deleted it must stop.
func (fx *serviceFixture) serviceCIDRLive(t *testing.T, fast bool) error {
	if !fast {
		return skipError{"n/a: with the fast path off every packet goes through the stack"}
	}
	l := fx.l
	ctx := context.Background()
	// What status says: the cluster's Service CIDRs learned and in the
	// pass map, kube-proxy's mode found, kernel conntrack nat (auto).
	st, out, err := readStatus(l, 1)
	if err != nil {
		return fmt.Errorf("status: %v\n%s", err, out)
	}
	v := st.Services
	if !v.Learned || !v.Synced || !slices.Contains(v.ServiceCIDRs, netip.MustParsePrefix("10.96.0.0/16")) ||
		!slices.Contains(v.PassCIDRs, netip.MustParsePrefix("fd00:96::/112")) || v.KubeProxy != health.ProxySupported ||
		v.KubeProxyMode != l.Spec.ProxyMode || v.KernelConntrack != "nat" || !v.KernelConntrackAuto {
		return fmt.Errorf("node1 status services: %+v", v)
	}
	cidrs := []netip.Prefix{netip.MustParsePrefix("10.97.0.0/24"), netip.MustParsePrefix("fd00:97::/120")}
	const tag = "podrouter-e2e-servicecidr"
	ipts := []string{"iptables", "ip6tables"}
	for i, c := range cidrs {
		nodeExec(t, l, 1, ipts[i], "-t", "raw", "-I", "PREROUTING", "1", "-d", c.String(), "-m", "comment", "--comment", tag)
		defer func() {
			_, _ = l.Exec(ctx, l.NodeNS(1), ipts[i], "-t", "raw", "-D", "PREROUTING", "-d", c.String(), "-m", "comment", "--comment", tag) // goes with the lab anyway
		}()
	}
	counted := func() (v [2]uint64) {
		for i, ipt := range ipts {
			for _, line := range strings.Split(nodeExec(t, l, 1, ipt, "-t", "raw", "-nvxL", "PREROUTING"), "\n") {
				if f := strings.Fields(line); len(f) > 0 && strings.Contains(line, tag) {
					v[i], _ = strconv.ParseUint(f[0], 10, 64) // the rule's own line: a number
				}
			}
		}
		return v
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	for _, c := range cidrs {
		conn, err := lab.DialIn(ctx, l.PodNS(1, 1), "udp", netip.AddrPortFrom(c.Addr().Next(), 9).String())
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					_, _ = conn.Write([]byte("x")) // ICMP errors from the ToR may fail a write: keep sending
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	if v := counted(); v != [2]uint64{} {
		return fmt.Errorf("before the ServiceCIDR exists, %v packets to it already reached node1's stack", v)
	}
	obj := &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "e2e-live"}, Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{cidrs[0].String(), cidrs[1].String()}}}
	start := time.Now()
	if _, err := fx.cs.NetworkingV1().ServiceCIDRs().Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		return err
	}
	var took time.Duration
	for {
		if v := counted(); v[0] > 0 && v[1] > 0 {
			took = time.Since(start)
			break
		}
		if time.Since(start) > 5*time.Second {
			return fmt.Errorf("ServiceCIDR %v not handed to the stack after 5 s", cidrs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("ServiceCIDR %v handed to node1's stack %s after it was created", cidrs, took.Round(time.Millisecond))
	if err := fx.cs.NetworkingV1().ServiceCIDRs().Delete(ctx, obj.Name, metav1.DeleteOptions{}); err != nil {
		return err
	}
	if took > time.Second {
		return fmt.Errorf("ServiceCIDR handed to the stack after %s, want within 1 s", took)
	}
	// Deleted: the object stays (terminating) until the controller-manager
	// has seen that no Service uses its addresses, and its CIDRs keep
	// going to the stack until then; once it is gone, the packets stop
	// reaching the stack within a second.
	gone := time.Now()
	for {
		_, err := fx.cs.NetworkingV1().ServiceCIDRs().Get(ctx, obj.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Since(gone) > 30*time.Second {
			return fmt.Errorf("ServiceCIDR %s still there 30 s after its deletion (err %v)", obj.Name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("ServiceCIDR %s gone from the API %s after its deletion", obj.Name, time.Since(gone).Round(time.Millisecond))
	gone = time.Now()
	deadline := gone.Add(time.Second)
	for prev := counted(); ; {
		time.Sleep(200 * time.Millisecond)
		cur := counted()
		if cur == prev {
			t.Logf("packets to %v no longer reach the stack (%s after the object went)", cidrs, time.Since(gone).Round(time.Millisecond))
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("packets to %v still reach the stack 1 s after the ServiceCIDR object went", cidrs)
		}
		prev = cur
	}
}
