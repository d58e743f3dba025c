package lab

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// Speakers a node can run.
const (
	SpeakerPodrouter = "podrouter"
	SpeakerBIRD      = "bird"
)

// DefaultStateRoot holds one directory per lab instance.
const DefaultStateRoot = "/run/podrouter-lab"

// DefaultDataRoot holds the node runtimes' disk data, one directory per
// lab instance (Spec.Kubelets).
const DefaultDataRoot = "/var/lib/podrouter-lab"

// ToRASN is the AS number of every ToR; node n uses 65000+n.
const ToRASN = 65100

// Spec describes a lab instance. The zero value of every field except Name
// selects a default (see WithDefaults).
type Spec struct {
	// Name prefixes every network namespace and names the state directory:
	// 1-8 characters, [a-z0-9], starting with a letter ("lab", "t3f9").
	Name string `json:"name"`
	// ToRs is 1 or 2 (default 1).
	ToRs int `json:"tors"`
	// Nodes is 1..9 (default 3).
	Nodes int `json:"nodes"`
	// PodsPerNode is 1..9 (default 2).
	PodsPerNode int `json:"podsPerNode"`
	// Speaker is the BGP speaker run in each node: "podrouter" (default)
	// or "bird".
	Speaker string `json:"speaker"`
	// PodrouterBin is the podrouter binary (default: os.Executable()).
	PodrouterBin string `json:"podrouterBin"`
	// StateRoot is the parent of the state directory (default
	// /run/podrouter-lab).
	StateRoot string `json:"stateRoot"`
	// Datapath sets datapath.enabled in the rendered podrouter config.
	Datapath bool `json:"datapath"`
	// Password, when set, protects every node session with TCP-MD5
	// (FRR's "neighbor password", podrouter's passwordFile). [A-Za-z0-9] only.
	Password string `json:"password"`
	// GTSM turns on TTL security (RFC 5082) on every node session.
	GTSM bool `json:"gtsm"`
	// Kubeconfig, when set, runs the podrouter nodes in Kubernetes mode
	// against the API server it names (reachable from the node namespaces).
	Kubeconfig string `json:"kubeconfig"`
	// KubePasswordSecret (with Kubeconfig) takes the BGP password from this
	// Secret in namespace "podrouter" instead of the password file.
	KubePasswordSecret string `json:"kubePasswordSecret"`
	// AutoPeers renders bgp.autoPeers instead of a peer list: each node
	// finds its ToRs at the other end of its uplinks' /31 and /126.
	AutoPeers bool `json:"autoPeers"`
	// BFD runs FRR's bfdd on the ToRs and turns on BFD (300ms x 3) for
	// every node session, at the ToR and in the podrouter node configs.
	BFD bool `json:"bfd"`
	// DrainWithdrawAfter, when set, renders bgp.drain in deprefer mode
	// (AS-path prepend 3, MED 100, GRACEFUL_SHUTDOWN) with this delay.
	DrainWithdrawAfter time.Duration `json:"drainWithdrawAfter"`
	// Light builds nodes without pods (no CNI, no pod namespaces, no fast
	// path): a rack of up to 64 podrouter nodes for scale tests.
	Light bool `json:"light"`
	// ToRGracefulRestart makes the ToRs graceful-restart capable
	// themselves (RFC 4724 restarting speaker with forwarding state kept),
	// not only helpers: nodes then keep a restarting ToR's routes.
	ToRGracefulRestart bool `json:"torGracefulRestart"`
	// Kubernetes runs a Kubernetes control plane in ToR 1's namespace
	// (etcd, kube-apiserver, kube-controller-manager with node IPAM,
	// kube-scheduler), registers the nodes, runs podrouter in Kubernetes
	// mode and kube-proxy in every node, and backs Services with the lab
	// pods (see kube.go). Needs Speaker "podrouter".
	Kubernetes bool `json:"kubernetes"`
	// ProxyMode is kube-proxy's mode with Kubernetes: "iptables" (default)
	// or "nftables".
	ProxyMode string `json:"proxyMode"`
	// KubeBinDir holds kube-apiserver, kube-controller-manager,
	// kube-scheduler, kube-proxy and kubectl (`make kube` links them into
	// bin/). Default: the directory of PodrouterBin.
	KubeBinDir string `json:"kubeBinDir"`
	// BackendCommand is the argv prefix that runs the lab's backend server
	// (TCP/HTTP and UDP echo, see backend.go) with Kubernetes; the lab
	// appends its flags. Default: podrouter-lab next to PodrouterBin (make
	// lab-tool builds both into bin/), "backend".
	BackendCommand []string `json:"backendCommand"`
	// PassCIDRs is datapath.passCIDRs of every podrouter node (none by
	// default: in Kubernetes mode podrouter learns the cluster's Service
	// CIDRs from its ServiceCIDR objects).
	PassCIDRs []netip.Prefix `json:"passCIDRs"`
	// Kubelets (with Kubernetes) makes every node a real Kubernetes node:
	// containerd + runc + kubelet in it (see noderuntime.go). The kubelets
	// register the Nodes; the lab starts no podrouter, no pods and no Pod
	// objects of its own: podrouter comes from `kubectl apply -k Overlay`,
	// pods from Deployments. One ToR (the overlay names uplink up1).
	Kubelets bool `json:"kubelets"`
	// Images are image archives (`make image pause-image lab-image`)
	// imported into every node's containerd with Kubelets; one of them
	// must be SandboxImage. Nothing is ever pulled.
	Images []string `json:"images"`
	// Overlay, with Kubelets, is a kustomization Up applies with `kubectl
	// apply -k` once the Nodes are registered (deploy/lab: podrouter for
	// this lab); "" installs nothing.
	Overlay string `json:"overlay"`
	// DeferNodeIPAM (with Kubelets) starts the controller-manager without
	// node IPAM: the Nodes register with no pod CIDRs until StartNodeIPAM
	// (a node whose pod CIDR comes after podrouter started).
	DeferNodeIPAM bool `json:"deferNodeIPAM"`
	// DataRoot holds, per lab and node, containerd's root, the kubelet's
	// root directory and the pod logs (default /var/lib/podrouter-lab: a
	// disk file system).
	DataRoot string `json:"dataRoot"`
	// NoWait makes Up return once everything is started, without waiting
	// for BGP sessions and routes (useful when debugging a speaker).
	NoWait bool `json:"noWait"`
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,7}$`)

// WithDefaults returns s with defaults filled in. It does no I/O except
// for PodrouterBin, which it leaves empty (Up resolves it).
func (s Spec) WithDefaults() Spec {
	if s.ToRs == 0 {
		s.ToRs = 1
	}
	if s.Nodes == 0 {
		s.Nodes = 3
	}
	if s.PodsPerNode == 0 {
		s.PodsPerNode = 2
	}
	if s.Speaker == "" {
		s.Speaker = SpeakerPodrouter
	}
	if s.StateRoot == "" {
		s.StateRoot = DefaultStateRoot
	}
	if s.Kubernetes {
		if s.ProxyMode == "" {
			s.ProxyMode = ProxyModeIPTables
		}
		if s.KubeBinDir == "" && s.PodrouterBin != "" {
			s.KubeBinDir = filepath.Dir(s.PodrouterBin)
		}
		if len(s.BackendCommand) == 0 && s.PodrouterBin != "" {
			s.BackendCommand = []string{filepath.Join(filepath.Dir(s.PodrouterBin), "podrouter-lab"), "backend"}
		}
	}
	if s.Kubelets && s.DataRoot == "" {
		s.DataRoot = DefaultDataRoot
	}
	return s
}

// maxNodes is the largest rack a spec may ask for: the nine-node lab,
// or 64 light nodes (the /31 plan holds 128 per ToR).
func (s Spec) maxNodes() int {
	if s.Light {
		return 64
	}
	return 9
}

// Validate checks a defaulted spec.
func (s Spec) Validate() error {
	if !nameRE.MatchString(s.Name) {
		return fmt.Errorf("lab name %q: want 1-8 chars [a-z0-9] starting with a letter", s.Name)
	}
	if s.ToRs < 1 || s.ToRs > 2 {
		return fmt.Errorf("tors %d: want 1 or 2", s.ToRs)
	}
	if maxNodes := s.maxNodes(); s.Nodes < 1 || s.Nodes > maxNodes {
		return fmt.Errorf("nodes %d: want 1..%d", s.Nodes, maxNodes)
	}
	if s.Light && s.Datapath {
		return fmt.Errorf("light nodes have no pods: no datapath")
	}
	if s.PodsPerNode < 1 || s.PodsPerNode > 9 {
		return fmt.Errorf("pods per node %d: want 1..9", s.PodsPerNode)
	}
	if s.Speaker != SpeakerPodrouter && s.Speaker != SpeakerBIRD {
		return fmt.Errorf("speaker %q: want %q or %q", s.Speaker, SpeakerPodrouter, SpeakerBIRD)
	}
	if !filepath.IsAbs(s.StateRoot) {
		return fmt.Errorf("state root %q is not absolute", s.StateRoot)
	}
	if !passwordRE.MatchString(s.Password) {
		return fmt.Errorf("password: want 0-40 characters [A-Za-z0-9]")
	}
	if s.Speaker == SpeakerBIRD && (s.Password != "" || s.GTSM) {
		return fmt.Errorf("password and gtsm are rendered for podrouter nodes only")
	}
	if s.Speaker == SpeakerBIRD && s.BFD {
		return fmt.Errorf("bfd is rendered for podrouter nodes only")
	}
	if s.Kubernetes {
		if s.Speaker != SpeakerPodrouter {
			return fmt.Errorf("kubernetes: the nodes must run podrouter (speaker %q)", s.Speaker)
		}
		if s.Kubeconfig != "" {
			return fmt.Errorf("kubernetes: the lab writes the node kubeconfigs itself; leave kubeconfig empty")
		}
		if s.ProxyMode != ProxyModeIPTables && s.ProxyMode != ProxyModeNFTables {
			return fmt.Errorf("proxy mode %q: want %q or %q (ipvs needs CONFIG_IP_VS, which this kernel lacks)", s.ProxyMode, ProxyModeIPTables, ProxyModeNFTables)
		}
		if s.Kubelets {
			if s.ToRs != 1 {
				return fmt.Errorf("kubelets: one ToR (the lab overlay names uplink up1), not %d", s.ToRs)
			}
			if !filepath.IsAbs(s.DataRoot) {
				return fmt.Errorf("data root %q is not absolute", s.DataRoot)
			}
			if !slices.ContainsFunc(s.Images, func(p string) bool { return filepath.Base(p) == SandboxImageArchive }) {
				return fmt.Errorf("kubelets: the images lack %s, the sandbox image (make pause-image)", SandboxImageArchive)
			}
			for _, p := range append(slices.Clone(s.Images), s.Overlay) {
				if p != "" && !filepath.IsAbs(p) {
					return fmt.Errorf("kubelets: %q is not an absolute path", p)
				}
			}
		}
	} else if s.Kubelets {
		return fmt.Errorf("kubelets: only with kubernetes")
	} else if s.ProxyMode != "" {
		return fmt.Errorf("proxy mode %q: only with kubernetes", s.ProxyMode)
	}
	if s.DeferNodeIPAM && !s.Kubelets {
		return fmt.Errorf("deferNodeIPAM: only with kubelets")
	}
	for i, p := range s.PassCIDRs {
		if !p.IsValid() || p != p.Masked() {
			return fmt.Errorf("passCIDRs[%d]: %s is not a canonical prefix", i, p)
		}
	}
	return nil
}

var passwordRE = regexp.MustCompile(`^[A-Za-z0-9]{0,40}$`)

// Naming. Interface names inside the namespaces do not carry the lab name
// (each namespace has its own), so they stay short: up1, up2, n1..n9.

// StateDir is the lab's state directory.
func (s Spec) StateDir() string { return filepath.Join(s.StateRoot, s.Name) }

// ToRNS is the network namespace of ToR k (1-based).
func (s Spec) ToRNS(k int) string { return s.Name + "-tor" + strconv.Itoa(k) }

// NodeNS is the network namespace of node n (1-based).
func (s Spec) NodeNS(n int) string { return s.Name + "-n" + strconv.Itoa(n) }

// PodNS is the network namespace of pod p on node n (both 1-based).
func (s Spec) PodNS(n, p int) string { return s.NodeNS(n) + "p" + strconv.Itoa(p) }

// NodeName is node n's name in its podrouter config ("node1").
func NodeName(n int) string { return "node" + strconv.Itoa(n) }

// ToRName is ToR k's directory name in the state dir ("tor1").
func ToRName(k int) string { return "tor" + strconv.Itoa(k) }

// nsRE matches every namespace a lab called name may own.
func nsRE(name string) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `-(tor[0-9]+|n[0-9]+|n[0-9]+p[0-9]+)$`)
}

// Addressing (see doc.go).

// LinkV4 returns the /31 addresses of the link between ToR k and node n.
func LinkV4(k, n int) (tor, node netip.Addr) {
	tor = netip.AddrFrom4([4]byte{192, 168, byte(k), byte(2*n - 2)})
	return tor, tor.Next()
}

// LinkV6 returns the /126 addresses of the link between ToR k and node n
// (::1 and ::2, the two hosts of the /126 like an IPv4 /30).
func LinkV6(k, n int) (tor, node netip.Addr) {
	p := netip.MustParsePrefix(fmt.Sprintf("fd00:%x:%x::/126", k, n))
	tor = p.Addr().Next()
	return tor, tor.Next()
}

// InterToRV4 is ToR k's address on the link between the two ToRs, which
// stands in for the spine layer: without it a node-uplink failure would
// leave the other ToR with no way to the node's pods.
func InterToRV4(k int) netip.Addr { return netip.AddrFrom4([4]byte{192, 168, 0, byte(k - 1)}) }

// InterToRV6 is ToR k's IPv6 address on the inter-ToR link.
func InterToRV6(k int) netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf("fd00:0:12::%d", k))
}

// LinkAddrNode is node n's IPv4 address on its link to ToR k.
func LinkAddrNode(k, n int) netip.Addr {
	_, node := LinkV4(k, n)
	return node
}

// PasswordFile is where node n's TCP-MD5 password is written.
func (s Spec) PasswordFile(n int) string {
	return filepath.Join(s.StateDir(), NodeName(n), "bgp-password")
}

// NodeRouterID is node n's router ID, also on its lo as /32.
func NodeRouterID(n int) netip.Addr { return netip.AddrFrom4([4]byte{192, 168, 255, byte(n)}) }

// ToRRouterID is ToR k's router ID, also on its lo as /32.
func ToRRouterID(k int) netip.Addr { return netip.AddrFrom4([4]byte{192, 168, 254, byte(k)}) }

// ToRLoopback6 is ToR k's IPv6 loopback address (/128 on lo).
func ToRLoopback6(k int) netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf("fd00:254::%x", k))
}

// NodeASN is node n's AS number (65001 for node 1).
func NodeASN(n int) uint32 { return 65000 + uint32(n) }

// PodCIDRs returns node n's pod CIDRs: IPv4 first, then IPv6.
func PodCIDRs(n int) []netip.Prefix {
	return []netip.Prefix{
		netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(n), 0}), 24),
		netip.MustParsePrefix(fmt.Sprintf("fd00:10:0:%x::/64", n)),
	}
}

// AllPodCIDRs returns every node's pod CIDRs of one family, node order.
func (s Spec) AllPodCIDRs(f Family) []netip.Prefix {
	var out []netip.Prefix
	for n := 1; n <= s.Nodes; n++ {
		out = append(out, PodCIDRs(n)[f])
	}
	return out
}

// Family selects IPv4 or IPv6.
type Family int

// Address families.
const (
	IPv4 Family = 0
	IPv6 Family = 1
)

func (f Family) String() string {
	if f == IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

func familyOf(a netip.Addr) Family {
	if a.Is4() || a.Is4In6() {
		return IPv4
	}
	return IPv6
}
