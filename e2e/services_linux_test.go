package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/podrouter/podrouter/lab"
)

// TestKubernetesServices runs Kubernetes Services through the lab with the
// fast path on and off, kube-proxy in iptables and in nftables mode: one
// Kubernetes lab (control plane in the ToR, podrouter in Kubernetes mode,
// kube-proxy in every node, Pods backed by the lab backend), the cases of
// issue 9 (and a new pod's first packets) in every cell, and the matrix
// printed at the end. kube-proxy
// changes mode by a restart (it removes the other mode's rules itself,
// checked); the fast path is toggled by restarting podrouter with the
// re-rendered config.
func TestKubernetesServices(t *testing.T) {
	requireLab(t)
	kubeBin := requireKubeBinaries(t)
	before := globalSysctls()
	l := upLab(t, 1, func(s *lab.Spec) { s.Kubernetes, s.KubeBinDir = true, kubeBin })
	if after := globalSysctls(); after != before {
		t.Errorf("the Kubernetes lab changed machine-wide sysctls:\nbefore %s\nafter  %s", before, after)
	}
	fx := newServiceFixture(t, l)
	m := newMatrix()
	for _, step := range []struct {
		mode string
		fast bool
	}{
		{lab.ProxyModeIPTables, false}, {lab.ProxyModeIPTables, true},
		{lab.ProxyModeNFTables, true}, {lab.ProxyModeNFTables, false},
	} {
		if l.Spec.ProxyMode != step.mode {
			switchProxyMode(t, l, step.mode)
		}
		if l.Spec.Datapath != step.fast {
			setFastPath(t, l, step.fast)
		}
		col := column{step.mode, step.fast}
		t.Run(col.String(), func(t *testing.T) {
			for _, c := range fx.cases(col) {
				t.Run(c.name, func(t *testing.T) {
					start := time.Now()
					m.set(c.name, col, "FAIL") // a t.Fatal inside ends the case here
					err := c.run(t)
					var skip skipError
					switch {
					case errors.As(err, &skip):
						m.set(c.name, col, "skip")
						t.Skip(skip.why)
					case err != nil:
						m.set(c.name, col, "FAIL")
						t.Error(err)
					default:
						m.set(c.name, col, "ok")
						t.Logf("ok in %s", time.Since(start).Round(time.Millisecond))
					}
				})
			}
		})
	}
	t.Logf("Services through the lab (issue 9): case x kube-proxy mode x fast path\n%s", m.table())
	if after := globalSysctls(); after != before {
		t.Errorf("machine-wide sysctls changed during the test:\nbefore %s\nafter  %s", before, after)
	}
}

// requireKubeBinaries returns bin/ of the repository, where `make kube`
// links the Kubernetes components: missing fails under CI, skips elsewhere.
func requireKubeBinaries(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s missing: CI must run `make kube` first", b)
			}
			t.Skipf("%s missing: run `make kube` (~20 min cold)", b)
		}
	}
	return dir
}

// globalSysctls reads the machine-wide settings the lab's components
// could change: kube-proxy tunes nf_conntrack_max and the conntrack hash
// size (not per namespace) unless its conntrack settings are off. (No
// kubelet runs in this lab; the sysctls a kubelet sets are not read here,
// as other tests on the machine may run kubelets meanwhile.)
func globalSysctls() string {
	var out []string
	for _, f := range []string{"/proc/sys/net/netfilter/nf_conntrack_max", "/sys/module/nf_conntrack/parameters/hashsize"} {
		b, err := os.ReadFile(f)
		v := strings.TrimSpace(string(b))
		if err != nil {
			v = "absent"
		}
		out = append(out, filepath.Base(f)+"="+v)
	}
	return strings.Join(out, " ")
}

// column is one cell column of the matrix.
type column struct {
	mode string
	fast bool
}

func (c column) String() string {
	if c.fast {
		return c.mode + "/fastpath-on"
	}
	return c.mode + "/fastpath-off"
}

// skipError marks a case that cannot run in a cell, with the reason.
type skipError struct{ why string }

func (s skipError) Error() string { return s.why }

// matrix records the result of every case in every column.
type matrix struct {
	rows []string
	res  map[string]map[column]string
}

func newMatrix() *matrix { return &matrix{res: map[string]map[column]string{}} }

func (m *matrix) set(row string, c column, v string) {
	if m.res[row] == nil {
		m.rows = append(m.rows, row)
		m.res[row] = map[column]string{}
	}
	m.res[row][c] = v
}

func (m *matrix) table() string {
	cols := []column{
		{lab.ProxyModeIPTables, true}, {lab.ProxyModeIPTables, false},
		{lab.ProxyModeNFTables, true}, {lab.ProxyModeNFTables, false},
	}
	var b strings.Builder
	b.WriteString("| case |")
	for _, c := range cols {
		fmt.Fprintf(&b, " %s |", c)
	}
	b.WriteString("\n|---|")
	for range cols {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range m.rows {
		fmt.Fprintf(&b, "| %s |", r)
		for _, c := range cols {
			v := m.res[r][c]
			if v == "" {
				v = "-"
			}
			fmt.Fprintf(&b, " %s |", v)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// switchProxyMode restarts every kube-proxy in mode and checks that the
// other mode's rules are gone (kube-proxy cleans them up at start).
func switchProxyMode(t *testing.T, l *lab.Lab, mode string) {
	t.Helper()
	start := time.Now()
	if err := l.SetProxyMode(context.Background(), mode); err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-proxy now in %s mode on every node (%s)", mode, time.Since(start).Round(time.Millisecond))
	for n := 1; n <= 3; n++ {
		switch mode {
		case lab.ProxyModeNFTables:
			for _, save := range []string{"iptables-save", "ip6tables-save"} {
				if out := nodeExec(t, l, n, save); strings.Contains(out, "KUBE-SERVICES") {
					t.Errorf("node%d: iptables-mode rules left after the switch to nftables (%s):\n%s", n, save, out)
				}
			}
		case lab.ProxyModeIPTables:
			if out := nodeExec(t, l, n, "nft", "list", "tables"); strings.Contains(out, "kube-proxy") {
				t.Errorf("node%d: nftables-mode tables left after the switch to iptables:\n%s", n, out)
			}
		}
	}
}

// setFastPath restarts every node's podrouter with datapath.enabled = on
// and waits until the fast path is attached (every pod address learnt) or
// gone.
func setFastPath(t *testing.T, l *lab.Lab, on bool) {
	t.Helper()
	l.Spec.Datapath = on
	for n := 1; n <= 3; n++ {
		restartPodrouter(t, l, n, syscall.SIGTERM)
	}
	if on {
		warm(t, l, [][2]podRef{{{1, 1}, {3, 1}}, {{1, 2}, {3, 2}}, {{2, 1}, {2, 2}}})
	}
	t.Logf("fast path %s on every node", map[bool]string{true: "on", false: "off"}[on])
}

// restartPodrouter stops node n's podrouter with sig, starts it again with
// the lab's current config and waits until it answers and its fast path
// hooks match the config.
func restartPodrouter(t *testing.T, l *lab.Lab, n int, sig syscall.Signal) {
	t.Helper()
	ctx := context.Background()
	if err := l.StopSpeaker(ctx, n, sig); err != nil {
		t.Fatal(err)
	}
	if err := l.StartSpeaker(ctx, n); err != nil {
		t.Fatal(err)
	}
	waitFor(t, fmt.Sprintf("node%d podrouter back (fast path %v)", n, l.Spec.Datapath), 30*time.Second, func() (bool, string) {
		if _, out, err := readStatus(l, n); err != nil {
			return false, fmt.Sprint(err, out)
		}
		if l.Spec.Datapath {
			return hooksOK(t, l, n, l.Spec.PodsPerNode)
		}
		hs := hooks(t, l, n)
		return len(hs) == 0, fmt.Sprintf("hooks %+v", hs)
	})
}

// serviceFixture holds the Services the cases use. Client: pod n1p1.
type serviceFixture struct {
	l   *lab.Lab
	cs  kubernetes.Interface
	ips map[string][]netip.Addr // ClusterIPs by Service, IPv4 first
	np  map[string]uint16       // node ports
	dir string
}

const persistLabel = "e2e.podrouter.io/persist"

// newServiceFixture creates the test Services and waits until kube-proxy
// serves every one (fast path off at this point).
func newServiceFixture(t *testing.T, l *lab.Lab) *serviceFixture {
	t.Helper()
	ctx := context.Background()
	cs, err := l.KubeClient()
	if err != nil {
		t.Fatal(err)
	}
	fx := &serviceFixture{l: l, cs: cs, ips: map[string][]netip.Addr{}, np: map[string]uint16{}, dir: t.TempDir()}
	// The persistent connection's Service has two backends on other nodes.
	for _, p := range []string{lab.PodName(2, 1), lab.PodName(3, 1)} {
		if _, err := cs.CoreV1().Pods(lab.KubeNamespace).Patch(ctx, p, types.MergePatchType,
			[]byte(`{"metadata":{"labels":{"`+persistLabel+`":"true"}}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	require := corev1.IPFamilyPolicyRequireDualStack
	echoPorts := []corev1.ServicePort{
		{Name: "echo", Port: lab.BackendEchoPort, TargetPort: intstr.FromInt32(lab.BackendEchoPort), Protocol: corev1.ProtocolTCP},
		{Name: "echo-udp", Port: lab.BackendEchoPort, TargetPort: intstr.FromInt32(lab.BackendEchoPort), Protocol: corev1.ProtocolUDP},
	}
	for _, s := range []struct {
		name     string
		selector map[string]string
		nodePort corev1.ServiceExternalTrafficPolicy
	}{
		{"remote", map[string]string{lab.LabelPod: lab.PodName(3, 1)}, ""},
		{"local", map[string]string{lab.LabelPod: lab.PodName(1, 2)}, ""},
		{"hairpin", map[string]string{lab.LabelPod: lab.PodName(1, 1)}, ""},
		{"persist", map[string]string{persistLabel: "true"}, ""},
		{"np-cluster", map[string]string{lab.LabelPod: lab.PodName(3, 1)}, corev1.ServiceExternalTrafficPolicyCluster},
		{"np-local", map[string]string{lab.LabelPod: lab.PodName(3, 2)}, corev1.ServiceExternalTrafficPolicyLocal},
	} {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: lab.KubeNamespace},
			Spec:       corev1.ServiceSpec{Selector: s.selector, IPFamilyPolicy: &require, Ports: echoPorts},
		}
		if s.nodePort != "" {
			svc.Spec.Type = corev1.ServiceTypeNodePort
			svc.Spec.ExternalTrafficPolicy = s.nodePort
			svc.Spec.Ports = echoPorts[:1]
		}
		got, err := cs.CoreV1().Services(lab.KubeNamespace).Create(ctx, svc, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create service %s: %v", s.name, err)
		}
		for _, ip := range got.Spec.ClusterIPs {
			fx.ips[s.name] = append(fx.ips[s.name], netip.MustParseAddr(ip))
		}
		if fx.ips[s.name][0].Is6() {
			fx.ips[s.name][0], fx.ips[s.name][1] = fx.ips[s.name][1], fx.ips[s.name][0]
		}
		if s.nodePort != "" {
			fx.np[s.name] = uint16(got.Spec.Ports[0].NodePort)
		}
	}
	start := time.Now()
	waitFor(t, "kube-proxy serving the test Services", 60*time.Second, func() (bool, string) {
		for _, svc := range []string{"remote", "local", "hairpin", "persist"} {
			for _, ip := range fx.ips[svc] {
				if _, err := probe(ctx, l.PodNS(1, 1), "tcp", netip.AddrPortFrom(ip, lab.BackendEchoPort), 1, 1); err != nil {
					return false, err.Error()
				}
			}
		}
		for n, svc := range map[int]string{1: "np-cluster", 3: "np-local"} {
			dst := netip.AddrPortFrom(lab.NodeIP(n, lab.IPv4), fx.np[svc])
			if _, err := probe(ctx, l.ToRNS(1), "tcp", dst, 1, 1); err != nil {
				return false, err.Error()
			}
		}
		return true, ""
	})
	t.Logf("test Services served by kube-proxy %s after creation: %v, node ports %v", time.Since(start).Round(time.Millisecond), fx.ips, fx.np)
	return fx
}

// testCase is one row of the matrix.
type testCase struct {
	name string
	run  func(t *testing.T) error
}

// families runs f for IPv4 and IPv6 and joins the failures.
func eachFamily(f func(lab.Family) error) error {
	var errs []error
	for _, fam := range families {
		if err := f(fam); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", fam, err))
		}
	}
	return errors.Join(errs...)
}

func (fx *serviceFixture) cases(col column) []testCase {
	l := fx.l
	ctx := context.Background()
	client := l.PodNS(1, 1)
	clusterIP := func(svc, network, want string) func(t *testing.T) error {
		return func(t *testing.T) error {
			return eachFamily(func(f lab.Family) error {
				_, err := probe(ctx, client, network, netip.AddrPortFrom(fx.ips[svc][f], lab.BackendEchoPort), 3, 3, want)
				return err
			})
		}
	}
	cs := []testCase{
		{"ClusterIP TCP, backend on another node", clusterIP("remote", "tcp", lab.PodName(3, 1))},
		{"ClusterIP UDP (connected), backend on another node", clusterIP("remote", "udp", lab.PodName(3, 1))},
		{"ClusterIP TCP, backend on the same node", clusterIP("local", "tcp", lab.PodName(1, 2))},
		{"ClusterIP UDP (connected), backend on the same node", clusterIP("local", "udp", lab.PodName(1, 2))},
		{"ClusterIP TCP, hairpin (own Service)", clusterIP("hairpin", "tcp", lab.PodName(1, 1))},
		{"ClusterIP UDP (connected), hairpin (own Service)", clusterIP("hairpin", "udp", lab.PodName(1, 1))},
		{"DNS Service: 100 dig queries from a pod, dnsmasq in a pod", fx.dns},
		{"NodePort from the ToR, externalTrafficPolicy Cluster, backend on another node", func(t *testing.T) error {
			return eachFamily(func(f lab.Family) error {
				_, err := probe(ctx, l.ToRNS(1), "tcp", netip.AddrPortFrom(lab.NodeIP(1, f), fx.np["np-cluster"]), 3, 3, lab.PodName(3, 1))
				return err
			})
		}},
		{"NodePort from the ToR, externalTrafficPolicy Local (client address kept)", func(t *testing.T) error {
			return eachFamily(func(f lab.Family) error {
				as, err := probe(ctx, l.ToRNS(1), "tcp", netip.AddrPortFrom(lab.NodeIP(3, f), fx.np["np-local"]), 3, 3, lab.PodName(3, 2))
				if err != nil {
					return err
				}
				tor4, _ := lab.LinkV4(1, 3)
				tor6, _ := lab.LinkV6(1, 3)
				for _, a := range as {
					if a.client.Addr() != tor4 && a.client.Addr() != tor6 {
						return fmt.Errorf("the backend saw client %s, want the ToR's own address", a.client)
					}
				}
				return nil
			})
		}},
		{"host network (node1) to a ClusterIP", func(t *testing.T) error {
			return eachFamily(func(f lab.Family) error {
				_, err := probe(ctx, l.NodeNS(1), "tcp", netip.AddrPortFrom(fx.ips["remote"][f], lab.BackendEchoPort), 3, 3, lab.PodName(3, 1))
				return err
			})
		}},
		{"pod to its own node's IP", func(t *testing.T) error {
			return eachFamily(func(f lab.Family) error {
				return fx.direct(client, netip.AddrPortFrom(lab.NodeIP(1, f), lab.BackendEchoPort), lab.NodeName(1), f)
			})
		}},
		{"pod to outside the cluster through the ToR (its loopback)", func(t *testing.T) error {
			return eachFamily(func(f lab.Family) error {
				dst := lab.ToRRouterID(1)
				if f == lab.IPv6 {
					dst = lab.ToRLoopback6(1)
				}
				return fx.direct(client, netip.AddrPortFrom(dst, lab.BackendEchoPort), lab.ToRName(1), f)
			})
		}},
	}
	// One connection for three rows: the first row runs it.
	persist := [3]error{errors.New("not run"), errors.New("not run"), errors.New("not run")}
	persistRan := false
	runPersist := func(i int) func(t *testing.T) error {
		return func(t *testing.T) error {
			if !persistRan {
				persistRan = true
				persist = fx.persistent(t)
			}
			return persist[i]
		}
	}
	cs = append(cs,
		testCase{"TCP through a Service survives a podrouter restart (SIGTERM)", runPersist(0)},
		testCase{"... and a podrouter crash (kill -9) and restart", runPersist(1)},
		testCase{"... and a change of the Service's other backends", runPersist(2)},
		testCase{"a new pod's first TCP connection and first ping to pods on other nodes, answered at once", func(t *testing.T) error { return fx.newPod(t, col.fast) }},
		testCase{"pod<->pod: fast path bypasses netfilter (FORWARD, nf_conntrack +0); off: the control sees it", func(t *testing.T) error { return fx.bypass(t, col.fast) }},
		testCase{"a ServiceCIDR added while running reaches the stack within 1 s", func(t *testing.T) error { return fx.serviceCIDRLive(t, col.fast) }},
	)
	return cs
}

// direct: a pod's connection to a plain address (no Service) keeps its
// own source address.
func (fx *serviceFixture) direct(ns string, dst netip.AddrPort, want string, f lab.Family) error {
	as, err := probe(context.Background(), ns, "tcp", dst, 3, 3, want)
	if err != nil {
		return err
	}
	src, err := fx.l.PodIP(context.Background(), 1, 1, f)
	if err != nil {
		return err
	}
	for _, a := range as {
		if a.client.Addr() != src {
			return fmt.Errorf("%s saw client %s, want the pod's own address %s", want, a.client, src)
		}
	}
	return nil
}

// dns: a real resolver (dig, the pod's resolv.conf pointing at the dns
// Service) asks dnsmasq in pod n3p2 100 times; every answer must come.
func (fx *serviceFixture) dns(t *testing.T) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	echo, err := fx.l.ServiceIPs(ctx, lab.EchoService)
	if err != nil {
		return err
	}
	want := echo[0]
	if want.Is6() {
		want = echo[1]
	}
	// One query first: a broken path would otherwise wait out 100 timeouts.
	if ok, out, err := digRepeat(ctx, fx.l, fx.l.PodNS(1, 1), lab.ServiceName(lab.EchoService), 1, want, fx.dir); ok != 1 {
		return fmt.Errorf("dig: first query unanswered: %v\n%s", err, tailLines(out, 5))
	}
	const n = 100
	ok, out, err := digRepeat(ctx, fx.l, fx.l.PodNS(1, 1), lab.ServiceName(lab.EchoService), n, want, fx.dir)
	if ok != n {
		return fmt.Errorf("dig: %d of %d queries answered %s (%v)\n%s", ok, n, want, err, tailLines(out, 5))
	}
	return nil
}

// waitEndpoints waits until Service svc's IPv4 EndpointSlices list want
// ready endpoints.
func (fx *serviceFixture) waitEndpoints(t *testing.T, svc string, want int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d ready endpoints of %s", want, svc), 20*time.Second, func() (bool, string) {
		sl, err := fx.cs.DiscoveryV1().EndpointSlices(lab.KubeNamespace).List(context.Background(),
			metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
		if err != nil {
			return false, err.Error()
		}
		ready := 0
		for _, s := range sl.Items {
			if s.AddressType != discoveryv1.AddressTypeIPv4 {
				continue
			}
			for _, e := range s.Endpoints {
				if e.Conditions.Ready != nil && *e.Conditions.Ready {
					ready++
				}
			}
		}
		return ready == want, fmt.Sprintf("%d ready", ready)
	})
}
