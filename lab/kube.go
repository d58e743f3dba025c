package lab

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
)

// The Kubernetes lab (Spec.Kubernetes): addressing, names and rendered
// configuration. Nothing here does I/O; kube_linux.go runs it.
//
// Control plane, in ToR 1's namespace (every process with a pidfile and a
// log under <statedir>/kube):
//
//	etcd                     http://127.0.0.1:2379 (Debian's etcd-server)
//	kube-apiserver           https://0.0.0.0:6443, advertised as 192.168.254.1
//	                         (ToR 1's loopback; the nodes reach it through
//	                         ToR 1's link address, directly connected, so
//	                         no BGP is needed to bootstrap)
//	kube-controller-manager  node IPAM (--allocate-node-cidrs), EndpointSlice
//	                         controller, service-account credentials; the node
//	                         lifecycle controller is off (no kubelet heartbeats)
//	kube-scheduler           for the kubelets of a later lab
//
// Nodes: the lab registers one Node per node namespace (InternalIPs = the
// node's up1 addresses); the controller-manager allocates spec.podCIDRs
// from ClusterCIDRs in registration order (node1 10.0.0.0/24 and
// fd00:10::/64, node2 10.0.1.0/24, ...); podrouter runs in Kubernetes mode
// with a token of the deployed ServiceAccount bound to a Pod on its Node
// and writes the CNI conflist from spec.podCIDRs; the lab pods are created
// with that conflist. kube-proxy runs in every node namespace.
//
// Pods: a Pod object per lab pod (namespace "lab", bound to its Node, the
// pod's real addresses and Ready written by the lab in pods/status), each
// running the lab backend (HTTP on 8080, line echo on TCP 9000, echo on
// UDP 9000); the last pod also runs dnsmasq behind the "dns" Service.
// Services select the Pods, so the EndpointSlice controller produces what
// kube-proxy sees in a real cluster.

// Kube-proxy modes the lab runs.
const (
	ProxyModeIPTables = "iptables"
	ProxyModeNFTables = "nftables"
)

// Kubernetes lab constants.
const (
	// KubeNamespace holds the lab's Pods and Services.
	KubeNamespace = "lab"
	// APIServerPort is kube-apiserver's secure port.
	APIServerPort = 6443
	// BackendHTTPPort, BackendEchoPort: the lab backend's ports (echo on
	// TCP and UDP).
	BackendHTTPPort = 8080
	BackendEchoPort = 9000
	// KubeProxyMetricsAddr serves /metrics and /proxyMode in each node's
	// namespace; KubeProxyHealthzAddr serves /healthz.
	KubeProxyMetricsAddr = "127.0.0.1:10249"
	KubeProxyHealthzAddr = "127.0.0.1:10256"
	// ClusterDomain is the DNS domain dnsmasq answers for.
	ClusterDomain = "cluster.local"
	// Labels on the lab's Pod objects.
	LabelApp  = "app"
	LabelPod  = "lab.podrouter.io/pod"
	LabelRole = "lab.podrouter.io/role"
	// EchoService and DNSService are the Services the lab creates.
	EchoService = "echo"
	DNSService  = "dns"
)

// ClusterCIDRs are the pod address ranges node IPAM allocates from (within
// the ToRs' prefix lists: 10.0.0.0/8 ge 24 le 24, fd00:10::/32 ge 64 le 64).
func ClusterCIDRs() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16"), netip.MustParsePrefix("fd00:10::/56")}
}

// NodeCIDRMaskSizes are the per-node pod CIDR sizes (IPv4, IPv6).
var NodeCIDRMaskSizes = [2]int{24, 64}

// ServiceCIDRs are the cluster's Service CIDRs (the default ServiceCIDR
// object "kubernetes").
func ServiceCIDRs() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16"), netip.MustParsePrefix("fd00:96::/112")}
}

// DNSServiceIPs are the "dns" Service's ClusterIPs.
func DNSServiceIPs() []netip.Addr {
	return []netip.Addr{netip.MustParseAddr("10.96.0.10"), netip.MustParseAddr("fd00:96::a")}
}

// APIServerIP is where kube-apiserver is advertised: ToR 1's loopback.
func APIServerIP() netip.Addr { return ToRRouterID(1) }

// NodeIP is node n's InternalIP of family f: its address on the link to
// ToR 1 (reachable from the ToR, the other nodes and their pods).
func NodeIP(n int, f Family) netip.Addr {
	if f == IPv6 {
		_, a := LinkV6(1, n)
		return a
	}
	_, a := LinkV4(1, n)
	return a
}

// PodName is the Pod object's name of pod p on node n ("n1p2").
func PodName(n, p int) string { return "n" + strconv.Itoa(n) + "p" + strconv.Itoa(p) }

// joinPrefixes renders prefixes comma-separated, as Kubernetes flags want.
func joinPrefixes(ps []netip.Prefix) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, ",")
}

// Paths under <statedir>/kube.
func (s Spec) kubeDir() string            { return filepath.Join(s.StateDir(), "kube") }
func (s Spec) pkiDir() string             { return filepath.Join(s.kubeDir(), "pki") }
func (s Spec) adminKubeconfig() string    { return filepath.Join(s.kubeDir(), "admin.kubeconfig") }
func (s Spec) kubeBin(name string) string { return filepath.Join(s.KubeBinDir, name) }
func (s Spec) nodeKubeDir(n int) string   { return filepath.Join(s.StateDir(), NodeName(n), "kube") }
func (s Spec) kubeProxyConfig(n int) string {
	return filepath.Join(s.nodeKubeDir(n), "kube-proxy.yaml")
}
func (s Spec) k8sCNIConfList(n int) string {
	return filepath.Join(s.StateDir(), NodeName(n), "cni-k8s", "10-podrouter.conflist")
}
func (s Spec) kubeProxyPidfile(n int) string {
	return filepath.Join(s.nodeKubeDir(n), "kube-proxy.pid")
}

// AdminKubeconfig is the cluster admin's kubeconfig (server
// 192.168.254.1: use it inside ToR 1's namespace).
func (s Spec) AdminKubeconfig() string { return s.adminKubeconfig() }

// kubeProxyData renders node n's KubeProxyConfiguration.
type kubeProxyData struct {
	Kubeconfig, Hostname, Mode, ClusterCIDR string
	MetricsAddr, HealthzAddr                string
}

func (s Spec) kubeProxyData(n int) kubeProxyData {
	return kubeProxyData{
		Kubeconfig: filepath.Join(s.nodeKubeDir(n), "kube-proxy.kubeconfig"),
		Hostname:   NodeName(n), Mode: s.ProxyMode, ClusterCIDR: joinPrefixes(ClusterCIDRs()),
		MetricsAddr: KubeProxyMetricsAddr, HealthzAddr: KubeProxyHealthzAddr,
	}
}

// kube-proxy in a node namespace: its conntrack tuning is off (maxPerCore
// 0, timeouts 0: nf_conntrack_max and the hash size are global to the
// machine, not per namespace), oomScoreAdj 0 (root here lacks
// CAP_SYS_RESOURCE), metrics and healthz on the node's own loopback.
var kubeProxyTmpl = template.Must(template.New("kube-proxy").Parse(`# rendered by podrouter lab
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: {{.Kubeconfig}}
hostnameOverride: {{.Hostname}}
mode: {{.Mode}}
clusterCIDR: {{.ClusterCIDR}}
detectLocalMode: ClusterCIDR
nodePortAddresses: [primary]
metricsBindAddress: {{.MetricsAddr}}
healthzBindAddress: {{.HealthzAddr}}
enableProfiling: false
oomScoreAdj: 0
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`))

// resolvConf is what a kubelet writes into a pod with ClusterFirst DNS.
func resolvConf() string {
	return fmt.Sprintf("search %s.svc.%s svc.%s %s\nnameserver %s\noptions ndots:5\n",
		KubeNamespace, ClusterDomain, ClusterDomain, ClusterDomain, DNSServiceIPs()[0])
}

// ServiceName is the DNS name of a Service in the lab namespace.
func ServiceName(svc string) string {
	return svc + "." + KubeNamespace + ".svc." + ClusterDomain
}
