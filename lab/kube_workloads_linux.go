package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/podrouter/podrouter/k8s"
)

// The Kubernetes lab's workloads: pods attached with the conflist podrouter
// wrote from the Node's pod CIDRs, the backend server in each, Pod objects
// with their real addresses and Ready status, the lab's Services, DNS and
// kube-proxy in every node.

// etcNetnsDir is where `ip netns exec NS` finds files it bind-mounts over
// /etc (resolv.conf for the pods, as a kubelet writes it).
const etcNetnsDir = "/etc/netns"

// startKubeWorkloads runs after the speakers started in Kubernetes mode.
func (l *Lab) startKubeWorkloads(ctx context.Context) error {
	s := l.Spec
	cs, err := l.KubeClient()
	if err != nil {
		return err
	}
	for n := 1; n <= s.Nodes; n++ {
		// podrouter writes the conflist once its Node informer synced.
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		err := poll(wctx, 100*time.Millisecond, func() (bool, string, error) {
			_, err := os.Stat(s.k8sCNIConfList(n))
			return err == nil, fmt.Sprintf("%s: podrouter has not written %s", NodeName(n), s.k8sCNIConfList(n)), nil
		})
		cancel()
		if err != nil {
			return fmt.Errorf("%w\n%s", err, tail(l.speakerLog(n), 20))
		}
		if err := l.addNodePods(ctx, n); err != nil {
			return err
		}
	}
	// Backends: in every pod, every node (host network) and ToR 1 (a
	// server outside the cluster).
	for n := 1; n <= s.Nodes; n++ {
		for p := 1; p <= s.PodsPerNode; p++ {
			if err := l.startBackend(s.PodNS(n, p), PodName(n, p), filepath.Join(l.nodeDir(n), "backend-"+PodName(n, p))); err != nil {
				return err
			}
		}
		if err := l.startBackend(s.NodeNS(n), NodeName(n), filepath.Join(l.nodeDir(n), "backend")); err != nil {
			return err
		}
	}
	if err := l.startBackend(s.ToRNS(1), ToRName(1), filepath.Join(s.kubeDir(), "backend-"+ToRName(1))); err != nil {
		return err
	}
	for n := 1; n <= s.Nodes; n++ {
		for p := 1; p <= s.PodsPerNode; p++ {
			if err := l.createPodObject(ctx, cs, n, p); err != nil {
				return err
			}
		}
	}
	echo, err := l.createLabServices(ctx, cs)
	if err != nil {
		return err
	}
	if err := l.startDNS(echo); err != nil {
		return err
	}
	for n := 1; n <= s.Nodes; n++ {
		if err := l.StartKubeProxy(ctx, n); err != nil {
			return err
		}
	}
	return l.WaitKubeProxies(ctx)
}

// addNodePods attaches node n's pods with the conflist podrouter wrote.
func (l *Lab) addNodePods(ctx context.Context, n int) error {
	s := l.Spec
	pn, err := s.loadPodNet(n)
	if err != nil {
		return err
	}
	for p := 1; p <= s.PodsPerNode; p++ {
		if err := addNS(ctx, s.PodNS(n, p), podSysctls); err != nil {
			return err
		}
		if err := s.addPod(ctx, pn, n, p); err != nil {
			return err
		}
		if err := writeResolvConf(s.PodNS(n, p)); err != nil {
			return err
		}
	}
	return nil
}

// writeResolvConf gives pod namespace ns the cluster's resolv.conf (what
// `ip netns exec` mounts over /etc/resolv.conf).
func writeResolvConf(ns string) error {
	dir := filepath.Join(etcNetnsDir, ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(resolvConf()), 0o644)
}

// startBackend runs the lab backend named name in ns; stem.{log,pid}.
func (l *Lab) startBackend(ns, name, stem string) error {
	if len(l.Spec.BackendCommand) == 0 {
		return errors.New("kubernetes lab: no backend command")
	}
	argv := append(append([]string{}, l.Spec.BackendCommand...), "--name", name)
	_, err := startDetached(ns, argv, stem+".log", stem+".pid")
	return err
}

// createPodObject creates pod p of node n's Pod object, bound to its Node,
// and writes its status as the kubelet would: running, its real
// addresses, Ready.
func (l *Lab) createPodObject(ctx context.Context, cs kubernetes.Interface, n, p int) error {
	s := l.Spec
	labels := map[string]string{LabelApp: "lab", LabelPod: PodName(n, p)}
	if n == s.Nodes && p == s.PodsPerNode {
		labels[LabelRole] = "dns"
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: PodName(n, p), Namespace: KubeNamespace, Labels: labels},
		Spec: corev1.PodSpec{
			NodeName: NodeName(n),
			Containers: []corev1.Container{{
				Name: "backend", Image: "podrouter-lab-backend",
				Ports: []corev1.ContainerPort{
					{Name: "http", ContainerPort: BackendHTTPPort, Protocol: corev1.ProtocolTCP},
					{Name: "echo", ContainerPort: BackendEchoPort, Protocol: corev1.ProtocolTCP},
					{Name: "echo-udp", ContainerPort: BackendEchoPort, Protocol: corev1.ProtocolUDP},
				},
			}},
			AutomountServiceAccountToken: new(false),
		},
	}
	created, err := cs.CoreV1().Pods(KubeNamespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create pod %s: %w", pod.Name, err)
	}
	var podIPs []corev1.PodIP
	for _, f := range []Family{IPv4, IPv6} {
		a, err := l.PodIP(ctx, n, p, f)
		if err != nil {
			return err
		}
		podIPs = append(podIPs, corev1.PodIP{IP: a.String()})
	}
	now := metav1.Now()
	created.Status = corev1.PodStatus{
		Phase:     corev1.PodRunning,
		HostIP:    NodeIP(n, IPv4).String(),
		HostIPs:   []corev1.HostIP{{IP: NodeIP(n, IPv4).String()}, {IP: NodeIP(n, IPv6).String()}},
		PodIP:     podIPs[0].IP,
		PodIPs:    podIPs,
		StartTime: &now,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		},
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "backend", Image: "podrouter-lab-backend", Ready: true, Started: new(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		}},
	}
	if _, err := cs.CoreV1().Pods(KubeNamespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("pod %s status: %w", pod.Name, err)
	}
	return nil
}

// SetPodReady sets the Ready (and ContainersReady) condition of pod p on
// node n, as a kubelet does when a readiness probe changes: the
// EndpointSlice controller then adds or removes its endpoints.
func (l *Lab) SetPodReady(ctx context.Context, n, p int, ready bool) error {
	cs, err := l.KubeClient()
	if err != nil {
		return err
	}
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod, err := cs.CoreV1().Pods(KubeNamespace).Get(ctx, PodName(n, p), metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		for i, c := range pod.Status.Conditions {
			if (c.Type == corev1.PodReady || c.Type == corev1.ContainersReady) && c.Status != st {
				pod.Status.Conditions[i].Status, pod.Status.Conditions[i].LastTransitionTime = st, now
			}
		}
		for i := range pod.Status.ContainerStatuses {
			pod.Status.ContainerStatuses[i].Ready = ready
		}
		_, err = cs.CoreV1().Pods(KubeNamespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		return err
	})
}

// createLabServices creates the "echo" Service (every lab pod: HTTP 80,
// echo 9000 TCP and UDP; dual stack) and the "dns" Service (fixed
// ClusterIPs, the last pod's dnsmasq). It returns echo's ClusterIPs.
func (l *Lab) createLabServices(ctx context.Context, cs kubernetes.Interface) ([]netip.Addr, error) {
	require := corev1.IPFamilyPolicyRequireDualStack
	echo := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: EchoService, Namespace: KubeNamespace},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{LabelApp: "lab"}, IPFamilyPolicy: &require,
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, TargetPort: intstr.FromInt32(BackendHTTPPort), Protocol: corev1.ProtocolTCP},
				{Name: "echo", Port: BackendEchoPort, TargetPort: intstr.FromInt32(BackendEchoPort), Protocol: corev1.ProtocolTCP},
				{Name: "echo-udp", Port: BackendEchoPort, TargetPort: intstr.FromInt32(BackendEchoPort), Protocol: corev1.ProtocolUDP},
			},
		},
	}
	var ips []string
	for _, a := range DNSServiceIPs() {
		ips = append(ips, a.String())
	}
	dns := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: DNSService, Namespace: KubeNamespace},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{LabelRole: "dns"}, IPFamilyPolicy: &require, ClusterIP: ips[0], ClusterIPs: ips,
			Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, TargetPort: intstr.FromInt32(53), Protocol: corev1.ProtocolUDP},
				{Name: "dns-tcp", Port: 53, TargetPort: intstr.FromInt32(53), Protocol: corev1.ProtocolTCP},
			},
		},
	}
	got, err := cs.CoreV1().Services(KubeNamespace).Create(ctx, echo, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create service %s: %w", EchoService, err)
	}
	if _, err := cs.CoreV1().Services(KubeNamespace).Create(ctx, dns, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create service %s: %w", DNSService, err)
	}
	var out []netip.Addr
	for _, s := range got.Spec.ClusterIPs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("service %s clusterIP: %w", EchoService, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// startDNS runs dnsmasq in the last pod (the "dns" Service's backend),
// authoritative for the cluster domain with the echo Service's name.
func (l *Lab) startDNS(echo []netip.Addr) error {
	s := l.Spec
	rec := ServiceName(EchoService)
	for _, a := range echo {
		rec += "," + a.String()
	}
	argv := []string{"dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--pid-file=",
		"--no-resolv", "--no-hosts", "--log-facility=-", "--local=/" + ClusterDomain + "/",
		"--host-record=" + rec}
	stem := filepath.Join(l.nodeDir(s.Nodes), "dnsmasq")
	_, err := startDetached(s.PodNS(s.Nodes, s.PodsPerNode), argv, stem+".log", stem+".pid")
	return err
}

// StartKubeProxy renders node n's kube-proxy config (Spec.ProxyMode) and
// starts kube-proxy in the node's namespace.
func (l *Lab) StartKubeProxy(ctx context.Context, n int) error {
	s := l.Spec
	if pid, _ := readPid(s.kubeProxyPidfile(n)); pid > 0 && alive(pid) {
		return fmt.Errorf("%s: kube-proxy already running (pid %d)", NodeName(n), pid)
	}
	b, err := render(kubeProxyTmpl, s.kubeProxyData(n))
	if err != nil {
		return err
	}
	if err := os.WriteFile(s.kubeProxyConfig(n), b, 0o644); err != nil {
		return err
	}
	argv := []string{s.kubeBin("kube-proxy"), "--config", s.kubeProxyConfig(n), "--v", "1"}
	logPath := filepath.Join(s.nodeKubeDir(n), "kube-proxy.log")
	pid, err := startDetached(s.NodeNS(n), argv, logPath, s.kubeProxyPidfile(n))
	if err != nil {
		return err
	}
	if left := waitGone(ctx, []int{pid}, 300*time.Millisecond); len(left) == 0 {
		return fmt.Errorf("kube-proxy on %s exited at once:\n%s", NodeName(n), tail(logPath, 20))
	}
	return nil
}

// StopKubeProxy stops node n's kube-proxy (SIGTERM) and waits for it.
// Its rules stay, as after a real kube-proxy stops.
func (l *Lab) StopKubeProxy(ctx context.Context, n int) error {
	pid, err := readPid(l.Spec.kubeProxyPidfile(n))
	if err != nil || pid == 0 || !alive(pid) {
		return err
	}
	if err := terminate(ctx, []int{pid}, 10*time.Second); err != nil {
		return err
	}
	return os.Remove(l.Spec.kubeProxyPidfile(n))
}

// SetProxyMode restarts every kube-proxy in mode ("iptables" or
// "nftables") and waits until each reports it and is healthy. kube-proxy
// removes the other mode's rules itself when it starts.
func (l *Lab) SetProxyMode(ctx context.Context, mode string) error {
	if mode != ProxyModeIPTables && mode != ProxyModeNFTables {
		return fmt.Errorf("proxy mode %q: want %q or %q", mode, ProxyModeIPTables, ProxyModeNFTables)
	}
	for n := 1; n <= l.Spec.Nodes; n++ {
		if err := l.StopKubeProxy(ctx, n); err != nil {
			return err
		}
	}
	l.Spec.ProxyMode = mode
	if err := l.Spec.save(); err != nil {
		return err
	}
	for n := 1; n <= l.Spec.Nodes; n++ {
		if err := l.StartKubeProxy(ctx, n); err != nil {
			return err
		}
	}
	return l.WaitKubeProxies(ctx)
}

// WaitKubeProxies waits (up to 60 s) until every node's kube-proxy
// reports Spec.ProxyMode on /proxyMode and 200 on /healthz (it has
// programmed the Services).
func (l *Lab) WaitKubeProxies(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for n := 1; n <= l.Spec.Nodes; n++ {
		hc := l.nodeHTTPClient(n)
		err := poll(wctx, 200*time.Millisecond, func() (bool, string, error) {
			mode, err := k8s.ProbeProxyMode(wctx, hc, "http://"+KubeProxyMetricsAddr+"/proxyMode")
			if err != nil {
				return false, err.Error(), nil
			}
			if string(mode) != l.Spec.ProxyMode {
				return false, fmt.Sprintf("proxyMode %q, want %q", mode, l.Spec.ProxyMode), nil
			}
			code, body, err := httpGet(wctx, hc, "http://"+KubeProxyHealthzAddr+"/healthz")
			if err != nil || code != http.StatusOK {
				return false, fmt.Sprintf("healthz %d %v %.200s", code, err, body), nil
			}
			return true, "", nil
		})
		if err != nil {
			return fmt.Errorf("%s kube-proxy: %w\n%s", NodeName(n), err, tail(filepath.Join(l.Spec.nodeKubeDir(n), "kube-proxy.log"), 20))
		}
	}
	return nil
}

// ProxyMode asks node n's kube-proxy for its mode (GET /proxyMode).
func (l *Lab) ProxyMode(ctx context.Context, n int) (k8s.ProxyMode, error) {
	return k8s.ProbeProxyMode(ctx, l.nodeHTTPClient(n), "http://"+KubeProxyMetricsAddr+"/proxyMode")
}

// nodeHTTPClient talks HTTP from inside node n's namespace.
func (l *Lab) nodeHTTPClient(n int) *http.Client {
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: Dialer(l.Spec.NodeNS(n)), DisableKeepAlives: true}}
}

func httpGet(ctx context.Context, hc *http.Client, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b), err
}

// ServiceIPs returns the ClusterIPs of Service name in the lab namespace.
func (l *Lab) ServiceIPs(ctx context.Context, name string) ([]netip.Addr, error) {
	cs, err := l.KubeClient()
	if err != nil {
		return nil, err
	}
	svc, err := cs.CoreV1().Services(KubeNamespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, s := range svc.Spec.ClusterIPs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// ServicePort is one port of a Service ExposePod makes: Port to the same
// port on the pod.
type ServicePort struct {
	Name     string
	Port     int32
	Protocol string // "TCP" or "UDP"
}

// ExposePod creates a ClusterIP Service (single stack, IPv4) named name in
// the lab namespace whose one backend is pod p of node n, and returns its
// ClusterIP.
func (l *Lab) ExposePod(ctx context.Context, name string, n, p int, ports []ServicePort) (netip.Addr, error) {
	cs, err := l.KubeClient()
	if err != nil {
		return netip.Addr{}, err
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: KubeNamespace},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{LabelPod: PodName(n, p)}},
	}
	for _, sp := range ports {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: sp.Name, Port: sp.Port, TargetPort: intstr.FromInt32(sp.Port), Protocol: corev1.Protocol(sp.Protocol)})
	}
	got, err := cs.CoreV1().Services(KubeNamespace).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("create service %s: %w", name, err)
	}
	return netip.ParseAddr(got.Spec.ClusterIP)
}

// DeleteService deletes Service name in the lab namespace (absent: no
// error).
func (l *Lab) DeleteService(ctx context.Context, name string) error {
	cs, err := l.KubeClient()
	if err != nil {
		return err
	}
	err = cs.CoreV1().Services(KubeNamespace).Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
