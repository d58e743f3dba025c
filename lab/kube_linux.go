package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	deploy "github.com/podrouter/podrouter/deploy/kubernetes"
	"github.com/podrouter/podrouter/k8s/apply"
)

// The control plane of the Kubernetes lab (see kube.go for the layout).

// kubeBinaries are the components the lab runs, from Spec.KubeBinDir.
var kubeBinaries = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "kubectl"}

// podrouterTokenLifetime is how long the nodes' ServiceAccount tokens live.
const podrouterTokenLifetime = 7 * 24 * time.Hour

// startKube brings up the control plane in ToR 1's namespace, installs
// podrouter's access (deploy/kubernetes), registers the nodes, waits for
// node IPAM to give each its pod CIDRs, and writes each node's podrouter
// kubeconfig (a token bound to a Pod on its Node, as the kubelet mints
// them). The nodes' speakers are not started here.
func (l *Lab) startKube(ctx context.Context) error {
	s := l.Spec
	for _, b := range kubeBinaries {
		if _, err := os.Stat(s.kubeBin(b)); err != nil {
			return fmt.Errorf("kubernetes lab: %s missing in %s: run `make kube` (~20 min cold, cached per machine)", b, s.KubeBinDir)
		}
	}
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		return errors.New("kubernetes lab: etcd not found: install Debian's etcd-server (make deps)")
	}
	start := time.Now()
	p, err := l.writeKubeCredentials()
	if err != nil {
		return err
	}
	if err := l.startControlPlane(ctx, etcd, p); err != nil {
		return err
	}
	cs, err := l.KubeClient()
	if err != nil {
		return err
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: KubeNamespace}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace %s: %w", KubeNamespace, err)
	}
	if s.Kubelets {
		// The kubelets register the Nodes; podrouter, its access
		// included, comes from the overlay.
		l.log.Info("kubernetes control plane up", "elapsed", time.Since(start).Round(time.Millisecond))
		return nil
	}
	if err := l.applyAccess(ctx); err != nil {
		return err
	}
	if err := l.registerNodes(ctx, cs); err != nil {
		return err
	}
	for n := 1; n <= s.Nodes; n++ {
		if err := l.writePodrouterKubeconfig(ctx, cs, p, n); err != nil {
			return err
		}
	}
	l.log.Info("kubernetes control plane up", "nodes", s.Nodes, "elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}

// writeKubeCredentials makes the PKI and every kubeconfig but the
// podrouter ones (those need the API server for their tokens).
func (l *Lab) writeKubeCredentials() (*pki, error) {
	s := l.Spec
	p, err := newPKI(s.pkiDir(), s.Name)
	if err != nil {
		return nil, err
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback, APIServerIP().AsSlice()}
	for _, svc := range ServiceCIDRs() {
		ips = append(ips, svc.Addr().Next().AsSlice()) // the "kubernetes" Service's ClusterIP
	}
	for n := 1; n <= s.Nodes; n++ {
		t4, _ := LinkV4(1, n)
		t6, _ := LinkV6(1, n)
		ips = append(ips, t4.AsSlice(), t6.AsSlice())
	}
	if _, _, err := p.issue(pkiCert{name: "apiserver", cn: "kube-apiserver", server: true, ips: ips,
		dns: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + ClusterDomain}}); err != nil {
		return nil, err
	}
	for _, c := range []pkiCert{
		{name: "apiserver-kubelet-client", cn: "kube-apiserver-kubelet-client", orgs: []string{"system:masters"}},
		// The aggregation layer's client (request-header authentication,
		// which the controller-manager and scheduler delegate to).
		{name: "front-proxy-client", cn: "front-proxy-client"},
	} {
		if _, _, err := p.issue(c); err != nil {
			return nil, err
		}
	}
	local := apiServerURL("127.0.0.1")
	for _, c := range []struct {
		cert, user, server, path string
		orgs                     []string
	}{
		{"admin", "lab-admin", apiServerURL(APIServerIP().String()), s.adminKubeconfig(), []string{"system:masters"}},
		{"controller-manager", "system:kube-controller-manager", local, filepath.Join(s.kubeDir(), "controller-manager.kubeconfig"), nil},
		{"scheduler", "system:kube-scheduler", local, filepath.Join(s.kubeDir(), "scheduler.kubeconfig"), nil},
	} {
		cert, key, err := p.issue(pkiCert{name: c.cert, cn: c.user, orgs: c.orgs})
		if err != nil {
			return nil, err
		}
		if err := writeKubeconfig(c.path, c.server, p.caPEM, c.user, kubeconfigUser{certPEM: cert, keyPEM: key}); err != nil {
			return nil, err
		}
	}
	// Every node reaches the API server at ToR 1's end of its uplink.
	proxyCert, proxyKey, err := p.issue(pkiCert{name: "kube-proxy", cn: "system:kube-proxy"})
	if err != nil {
		return nil, err
	}
	for n := 1; n <= s.Nodes; n++ {
		t4, _ := LinkV4(1, n)
		server := apiServerURL(t4.String())
		dir := s.nodeKubeDir(n)
		if err := writeKubeconfig(filepath.Join(dir, "kube-proxy.kubeconfig"), server, p.caPEM, "system:kube-proxy",
			kubeconfigUser{certPEM: proxyCert, keyPEM: proxyKey}); err != nil {
			return nil, err
		}
		// For a kubelet on this node (a later lab): its client identity.
		user := "system:node:" + NodeName(n)
		cert, key, err := p.issue(pkiCert{name: "kubelet-" + NodeName(n), cn: user, orgs: []string{"system:nodes"}})
		if err != nil {
			return nil, err
		}
		if err := writeKubeconfig(filepath.Join(dir, "kubelet.kubeconfig"), server, p.caPEM, user, kubeconfigUser{certPEM: cert, keyPEM: key}); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// controlPlaneProc names a control-plane process: its pidfile and log are
// <statedir>/kube/<name>.{pid,log}.
func (s Spec) controlPlanePaths(name string) (log, pid string) {
	return filepath.Join(s.kubeDir(), name+".log"), filepath.Join(s.kubeDir(), name+".pid")
}

func (l *Lab) startControlPlane(ctx context.Context, etcd string, p *pki) error {
	s := l.Spec
	ns := s.ToRNS(1)
	kd := s.kubeDir()
	services := joinPrefixes(ServiceCIDRs())
	procs := []struct {
		name string
		argv []string
	}{
		{"etcd", []string{etcd, "--name", "lab", "--data-dir", filepath.Join(kd, "etcd"),
			"--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
			"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
			"--initial-cluster", "lab=http://127.0.0.1:2380", "--log-level", "warn"}},
		{"kube-apiserver", []string{s.kubeBin("kube-apiserver"),
			"--etcd-servers", "http://127.0.0.1:2379",
			"--bind-address", "0.0.0.0", "--advertise-address", APIServerIP().String(),
			"--secure-port", fmt.Sprint(APIServerPort),
			"--cert-dir", filepath.Join(kd, "apiserver-certs"),
			"--tls-cert-file", p.path("apiserver.crt"), "--tls-private-key-file", p.path("apiserver.key"),
			"--client-ca-file", p.path("ca.crt"),
			"--kubelet-client-certificate", p.path("apiserver-kubelet-client.crt"),
			"--kubelet-client-key", p.path("apiserver-kubelet-client.key"),
			"--kubelet-preferred-address-types", "InternalIP",
			"--requestheader-client-ca-file", p.path("ca.crt"), "--requestheader-allowed-names", "front-proxy-client",
			"--requestheader-username-headers", "X-Remote-User", "--requestheader-group-headers", "X-Remote-Group",
			"--requestheader-extra-headers-prefix", "X-Remote-Extra-",
			"--proxy-client-cert-file", p.path("front-proxy-client.crt"), "--proxy-client-key-file", p.path("front-proxy-client.key"),
			"--authorization-mode", "Node,RBAC",
			"--enable-admission-plugins", "NodeRestriction",
			"--allow-privileged=true",
			"--service-account-issuer", "https://kubernetes.default.svc." + ClusterDomain,
			"--service-account-key-file", p.path("sa.pub"),
			"--service-account-signing-key-file", p.path("sa.key"),
			"--service-cluster-ip-range", services,
			"--profiling=false", "--v", "1"}},
	}
	for _, pr := range procs {
		logPath, pidPath := s.controlPlanePaths(pr.name)
		if _, err := startDetached(ns, pr.argv, logPath, pidPath); err != nil {
			return err
		}
	}
	if err := l.waitAPIServer(ctx); err != nil {
		return err
	}
	sched := filepath.Join(kd, "scheduler.kubeconfig")
	procs = []struct {
		name string
		argv []string
	}{
		{"kube-controller-manager", s.controllerManagerArgv(!s.DeferNodeIPAM)},
		{"kube-scheduler", []string{s.kubeBin("kube-scheduler"),
			"--kubeconfig", sched, "--authentication-kubeconfig", sched, "--authorization-kubeconfig", sched,
			"--bind-address", "127.0.0.1", "--leader-elect=false", "--profiling=false", "--v", "1"}},
	}
	for _, pr := range procs {
		logPath, pidPath := s.controlPlanePaths(pr.name)
		if _, err := startDetached(ns, pr.argv, logPath, pidPath); err != nil {
			return err
		}
	}
	return nil
}

// controllerManagerArgv is kube-controller-manager's command line, node
// IPAM on or off.
func (s Spec) controllerManagerArgv(nodeIPAM bool) []string {
	p := &pki{dir: s.pkiDir()}
	cm := filepath.Join(s.kubeDir(), "controller-manager.kubeconfig")
	// Without kubelets no one posts heartbeats: the node lifecycle
	// controller would taint the Nodes unreachable and evict the lab's
	// Pods. With kubelets it runs, as in any cluster.
	controllers := "*,-node-lifecycle-controller"
	if s.Kubelets {
		controllers = "*"
	}
	if !nodeIPAM {
		controllers += ",-node-ipam-controller"
	}
	return []string{s.kubeBin("kube-controller-manager"),
		"--kubeconfig", cm, "--authentication-kubeconfig", cm, "--authorization-kubeconfig", cm,
		"--bind-address", "127.0.0.1", "--leader-elect=false", "--cluster-name", "lab-" + s.Name,
		"--allocate-node-cidrs", "--cluster-cidr", joinPrefixes(ClusterCIDRs()),
		"--node-cidr-mask-size-ipv4", fmt.Sprint(NodeCIDRMaskSizes[0]),
		"--node-cidr-mask-size-ipv6", fmt.Sprint(NodeCIDRMaskSizes[1]),
		"--service-cluster-ip-range", joinPrefixes(ServiceCIDRs()),
		"--controllers", controllers,
		"--use-service-account-credentials=true",
		"--service-account-private-key-file", p.path("sa.key"),
		"--root-ca-file", p.path("ca.crt"),
		"--cluster-signing-cert-file", p.path("ca.crt"), "--cluster-signing-key-file", p.path("ca.key"),
		"--profiling=false", "--v", "1"}
}

// waitAPIServer polls /readyz as admin (up to 90 s).
func (l *Lab) waitAPIServer(ctx context.Context) error {
	rc, err := l.KubeREST()
	if err != nil {
		return err
	}
	rc.Timeout = 2 * time.Second
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	start := time.Now()
	err = poll(wctx, 200*time.Millisecond, func() (bool, string, error) {
		b, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(wctx)
		if err != nil {
			return false, fmt.Sprintf("%v %s", err, b), nil
		}
		return true, "", nil
	})
	if err != nil {
		logPath, _ := l.Spec.controlPlanePaths("kube-apiserver")
		return fmt.Errorf("kube-apiserver not ready: %w\n%s", err, tail(logPath, 20))
	}
	l.log.Debug("kube-apiserver ready", "elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}

// KubeREST is a cluster-admin REST config that dials from inside ToR 1's
// namespace (where the API server is).
func (l *Lab) KubeREST() (*rest.Config, error) {
	if !l.Spec.Kubernetes {
		return nil, errors.New("lab runs without kubernetes")
	}
	rc, err := clientcmd.BuildConfigFromFlags("", l.Spec.adminKubeconfig())
	if err != nil {
		return nil, err
	}
	rc.Dial = Dialer(l.Spec.ToRNS(1))
	rc.QPS, rc.Burst = 50, 100
	rc.UserAgent = "podrouter-lab"
	return rc, nil
}

// KubeClient is a cluster-admin clientset (see KubeREST).
func (l *Lab) KubeClient() (kubernetes.Interface, error) {
	rc, err := l.KubeREST()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(rc)
}

// Kubectl runs the real kubectl as cluster admin in ToR 1's namespace.
func (l *Lab) Kubectl(ctx context.Context, args ...string) (string, error) {
	argv := append([]string{l.Spec.kubeBin("kubectl"), "--kubeconfig", l.Spec.adminKubeconfig()}, args...)
	return Exec(ctx, l.Spec.ToRNS(1), argv...)
}

// applyAccess applies podrouter's namespace, RBAC and admission policy
// from deploy/kubernetes, server-side, as the deployment would.
func (l *Lab) applyAccess(ctx context.Context) error {
	rc, err := l.KubeREST()
	if err != nil {
		return err
	}
	a, err := apply.New(rc)
	if err != nil {
		return err
	}
	var objs []*unstructured.Unstructured
	for _, f := range deploy.Access {
		b, err := deploy.Manifests.ReadFile(f)
		if err != nil {
			return err
		}
		o, err := apply.Decode(f, b)
		if err != nil {
			return err
		}
		objs = append(objs, o...)
	}
	if _, err := a.Apply(ctx, objs, false); err != nil {
		return fmt.Errorf("apply deploy/kubernetes access manifests: %w", err)
	}
	return nil
}

// registerNodes creates the Nodes one by one and waits for each to get its
// pod CIDRs from node IPAM, so that allocation follows node order. It
// stores them (kube/nodes.json) for NodePodCIDRs.
func (l *Lab) registerNodes(ctx context.Context, cs kubernetes.Interface) error {
	s := l.Spec
	l.podCIDRs = map[int][]netip.Prefix{}
	for n := 1; n <= s.Nodes; n++ {
		name := NodeName(n)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Labels:      map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
				Annotations: map[string]string{"podrouter.io/router-id": NodeRouterID(n).String()},
			},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: NodeIP(n, IPv4).String()},
				{Type: corev1.NodeInternalIP, Address: NodeIP(n, IPv6).String()},
				{Type: corev1.NodeHostName, Address: name},
			}},
		}
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("register node %s: %w", name, err)
		}
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		err := poll(wctx, 100*time.Millisecond, func() (bool, string, error) {
			got, err := cs.CoreV1().Nodes().Get(wctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			if len(got.Spec.PodCIDRs) != 2 {
				return false, fmt.Sprintf("%s spec.podCIDRs %v", name, got.Spec.PodCIDRs), nil
			}
			ps, err := nodePodCIDRs(got)
			if err != nil {
				return false, "", err
			}
			l.podCIDRs[n] = ps
			return true, "", nil
		})
		cancel()
		if err != nil {
			logPath, _ := s.controlPlanePaths("kube-controller-manager")
			return fmt.Errorf("node IPAM: %w\n%s", err, tail(logPath, 20))
		}
		l.log.Debug("node registered", "node", name, "podCIDRs", l.podCIDRs[n])
	}
	return l.savePodCIDRs()
}

// nodePodCIDRs parses a Node's spec.podCIDRs, IPv4 first.
func nodePodCIDRs(node *corev1.Node) ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for _, c := range node.Spec.PodCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("%s spec.podCIDRs: %w", node.Name, err)
		}
		ps = append(ps, p)
	}
	if len(ps) == 2 && ps[0].Addr().Is6() {
		ps[0], ps[1] = ps[1], ps[0]
	}
	return ps, nil
}

// savePodCIDRs stores the Nodes' pod CIDRs (kube/nodes.json) for
// loadPodCIDRs.
func (l *Lab) savePodCIDRs() error {
	b, err := json.Marshal(l.podCIDRs)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(l.Spec.kubeDir(), "nodes.json"), b, 0o644)
}

// loadPodCIDRs reads what savePodCIDRs stored.
func (l *Lab) loadPodCIDRs() error {
	b, err := os.ReadFile(filepath.Join(l.Spec.kubeDir(), "nodes.json"))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, &l.podCIDRs)
}

// NodePodCIDRs returns node n's pod CIDRs, IPv4 first: allocated by the
// cluster with Spec.Kubernetes, else the lab's static plan (PodCIDRs).
func (l *Lab) NodePodCIDRs(n int) []netip.Prefix {
	if l.Spec.Kubernetes {
		return l.podCIDRs[n]
	}
	return PodCIDRs(n)
}

// writePodrouterKubeconfig creates node n's podrouter Pod (bound to the
// Node, ServiceAccount podrouter) and writes a kubeconfig with a token
// bound to it: the daemon's credentials as the DaemonSet would have them.
func (l *Lab) writePodrouterKubeconfig(ctx context.Context, cs kubernetes.Interface, p *pki, n int) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "podrouter-" + NodeName(n), Namespace: "podrouter", Labels: map[string]string{"app.kubernetes.io/name": "podrouter"}},
		Spec: corev1.PodSpec{
			NodeName: NodeName(n), ServiceAccountName: "podrouter", HostNetwork: true,
			Containers: []corev1.Container{{Name: "podrouter", Image: "podrouter"}},
		},
	}
	pod, err := cs.CoreV1().Pods("podrouter").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("podrouter pod on %s: %w", NodeName(n), err)
	}
	exp := int64(podrouterTokenLifetime / time.Second)
	tr, err := cs.CoreV1().ServiceAccounts("podrouter").CreateToken(ctx, "podrouter", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &exp,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("token for %s's podrouter: %w", NodeName(n), err)
	}
	t4, _ := LinkV4(1, n)
	return writeKubeconfig(filepath.Join(l.Spec.nodeKubeDir(n), "podrouter.kubeconfig"), apiServerURL(t4.String()), p.caPEM,
		"system:serviceaccount:podrouter:podrouter", kubeconfigUser{token: tr.Status.Token})
}

// controlPlaneProcs are the control plane's pidfile names, for status.
var controlPlaneProcs = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// controlPlaneStatus is one line per control-plane process: pid, alive,
// RSS.
func (l *Lab) controlPlaneStatus() string {
	var b strings.Builder
	for _, name := range controlPlaneProcs {
		_, pidPath := l.Spec.controlPlanePaths(name)
		pid, _ := readPid(pidPath) // missing: 0
		fmt.Fprintf(&b, "%-24s pid %-7d running=%-5v rss %s\n", name, pid, pid > 0 && alive(pid), ProcRSS(pid))
	}
	return b.String()
}
