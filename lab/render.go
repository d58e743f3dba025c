package lab

import (
	"bytes"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/podrouter/podrouter/k8s"
)

// Config files are rendered from templates so that a reader can compare
// them with what an operator would type. Nothing here does I/O.

type torPeer struct {
	Node int
	ASN  uint32
	V4   netip.Addr
	V6   netip.Addr
}

type torData struct {
	NS       string
	Dir      string
	ASN      uint32
	RouterID netip.Addr
	Peers    []torPeer
	// Password is the TCP-MD5 password on every node session ("" none).
	Password string
	// GTSM turns on RFC 5082 TTL security (hops 1) on every node session.
	GTSM bool
	// BFD runs bfdd and BFD (profile NODES, 300ms x 3) on every node session.
	BFD bool
	// GracefulRestart: the ToR restarts gracefully itself (not only a helper).
	GracefulRestart bool
	// MateV4/MateV6 are the other ToR's addresses on the inter-ToR link
	// (two ToRs only): an iBGP session standing in for the spine layer.
	MateV4, MateV6 netip.Addr
}

func (s Spec) torData(k int) torData {
	d := torData{NS: s.ToRNS(k), Dir: filepath.Join(s.StateDir(), ToRName(k)), ASN: ToRASN, RouterID: ToRRouterID(k),
		Password: s.Password, GTSM: s.GTSM, BFD: s.BFD, GracefulRestart: s.ToRGracefulRestart}
	for n := 1; n <= s.Nodes; n++ {
		_, v4 := LinkV4(k, n)
		_, v6 := LinkV6(k, n)
		d.Peers = append(d.Peers, torPeer{Node: n, ASN: NodeASN(n), V4: v4, V6: v6})
	}
	if s.ToRs == 2 {
		d.MateV4, d.MateV6 = InterToRV4(3-k), InterToRV6(3-k)
	}
	return d
}

var zebraTmpl = template.Must(template.New("zebra").Parse(`frr defaults datacenter
hostname {{.NS}}
log file {{.Dir}}/zebra.log informational
!
`))

// BFD timers of the lab, at the ToR (bfdd profile) and in the nodes.
const (
	labBFDIntervalMs = 300
	labBFDMult       = 3
)

// bfdd: single-hop BFD for the node sessions, which bgpd registers with
// "neighbor NODES4 bfd"; the profile sets the timers explicitly. (bgpd
// registers each session again with its local address and interface once
// BGP is established, and bfdd then replaces it: podrouter starts its BFD
// only after that, see bgp/bfd.go.)
var bfddTmpl = template.Must(template.New("bfdd").Parse(`frr defaults datacenter
hostname {{.NS}}
log file {{.Dir}}/bfdd.log informational
!
bfd
 profile NODES
  detect-multiplier ` + fmt.Sprint(labBFDMult) + `
  receive-interval ` + fmt.Sprint(labBFDIntervalMs) + `
  transmit-interval ` + fmt.Sprint(labBFDIntervalMs) + `
 exit
exit
!
`))

// bgpd: a downward-default ToR. Separate IPv4 and IPv6 sessions per node;
// explicit eBGP policy (route-maps over prefix-lists) both ways: only the
// default goes down, only /24 (/64) pod CIDRs come up.
var bgpdTmpl = template.Must(template.New("bgpd").Parse(`frr defaults datacenter
hostname {{.NS}}
log file {{.Dir}}/bgpd.log informational
!
ip prefix-list DEFAULT4 seq 5 permit 0.0.0.0/0
ip prefix-list PODS4 seq 5 permit 10.0.0.0/8 ge 24 le 24
ipv6 prefix-list DEFAULT6 seq 5 permit ::/0
ipv6 prefix-list PODS6 seq 5 permit fd00:10::/32 ge 64 le 64
!
route-map NODES4-IN permit 10
 match ip address prefix-list PODS4
exit
route-map NODES4-OUT permit 10
 match ip address prefix-list DEFAULT4
exit
route-map NODES6-IN permit 10
 match ipv6 address prefix-list PODS6
exit
route-map NODES6-OUT permit 10
 match ipv6 address prefix-list DEFAULT6
exit
!
router bgp {{.ASN}}
 bgp router-id {{.RouterID}}
 no bgp default ipv4-unicast
 bgp bestpath as-path multipath-relax
 bgp graceful-restart restart-time 120
{{- if .GracefulRestart}}
 bgp graceful-restart
 bgp graceful-restart preserve-fw-state
{{- end}}
 timers bgp 3 9
 neighbor NODES4 peer-group
 neighbor NODES4 timers 3 9
 neighbor NODES6 peer-group
 neighbor NODES6 timers 3 9
{{- if .GracefulRestart}}
 neighbor NODES4 graceful-restart
 neighbor NODES6 graceful-restart
{{- else}}
 neighbor NODES4 graceful-restart-helper
 neighbor NODES6 graceful-restart-helper
{{- end}}
{{- if .Password}}
 neighbor NODES4 password {{.Password}}
 neighbor NODES6 password {{.Password}}
{{- end}}
{{- if .GTSM}}
 neighbor NODES4 ttl-security hops 1
 neighbor NODES6 ttl-security hops 1
{{- end}}
{{- if .BFD}}
 neighbor NODES4 bfd
 neighbor NODES4 bfd profile NODES
 neighbor NODES6 bfd
 neighbor NODES6 bfd profile NODES
{{- end}}
{{- range .Peers}}
 neighbor {{.V4}} remote-as {{.ASN}}
 neighbor {{.V4}} peer-group NODES4
 neighbor {{.V4}} description node{{.Node}}-v4
 neighbor {{.V6}} remote-as {{.ASN}}
 neighbor {{.V6}} peer-group NODES6
 neighbor {{.V6}} description node{{.Node}}-v6
{{- end}}
{{- if .MateV4.IsValid}}
 neighbor {{.MateV4}} remote-as internal
 neighbor {{.MateV4}} description spine-v4
 neighbor {{.MateV4}} timers 3 9
 neighbor {{.MateV6}} remote-as internal
 neighbor {{.MateV6}} description spine-v6
 neighbor {{.MateV6}} timers 3 9
{{- end}}
 !
 address-family ipv4 unicast
{{- if .MateV4.IsValid}}
  neighbor {{.MateV4}} activate
  neighbor {{.MateV4}} next-hop-self
{{- end}}
  neighbor NODES4 activate
  neighbor NODES4 default-originate
  neighbor NODES4 route-map NODES4-IN in
  neighbor NODES4 route-map NODES4-OUT out
  maximum-paths 8
 exit-address-family
 !
 address-family ipv6 unicast
{{- if .MateV6.IsValid}}
  neighbor {{.MateV6}} activate
  neighbor {{.MateV6}} next-hop-self
{{- end}}
  neighbor NODES6 activate
  neighbor NODES6 default-originate
  neighbor NODES6 route-map NODES6-IN in
  neighbor NODES6 route-map NODES6-OUT out
  maximum-paths 8
 exit-address-family
exit
!
`))

type nodePeer struct {
	ToR   int
	Local netip.Addr
	Addr  netip.Addr
}

type nodeData struct {
	Name     string
	Dir      string
	Lab      string
	RouterID netip.Addr
	ASN      uint32
	PodV4    netip.Prefix
	PodV6    netip.Prefix
	PeersV4  []nodePeer
	PeersV6  []nodePeer
	Datapath bool
	PinDir   string
	ToRASN   uint32
	// PeerOpts is appended to every peer entry (MD5, GTSM).
	PeerOpts string
	// Kubeconfig switches the node to Kubernetes mode (pod CIDRs from the
	// Node object, not the file); KubePasswordSecret names the Secret in
	// namespace "podrouter" holding the BGP password.
	Kubeconfig, KubePasswordSecret string
	AutoPeers                      bool
	DrainWithdrawAfter             time.Duration
	// PassCIDRs is datapath.passCIDRs.
	PassCIDRs []netip.Prefix
}

func (s Spec) nodeData(n int) nodeData {
	cidrs := PodCIDRs(n)
	d := nodeData{
		Name: NodeName(n), Dir: filepath.Join(s.StateDir(), NodeName(n)), Lab: s.Name,
		RouterID: NodeRouterID(n), ASN: NodeASN(n), PodV4: cidrs[0], PodV6: cidrs[1],
		Datapath: s.Datapath, PinDir: s.NodePinDir(n), ToRASN: ToRASN,
	}
	if s.Password != "" {
		d.PeerOpts += ", passwordFile: " + s.PasswordFile(n)
	}
	if s.GTSM {
		d.PeerOpts += ", ttlMin: 255"
	}
	if s.BFD {
		d.PeerOpts += fmt.Sprintf(", bfd: {enabled: true, minTx: %dms, minRx: %dms, multiplier: %d}",
			labBFDIntervalMs, labBFDIntervalMs, labBFDMult)
	}
	// "{node}" in Kubeconfig is the node's name: one token per node.
	d.Kubeconfig = strings.ReplaceAll(s.Kubeconfig, "{node}", NodeName(n))
	if s.Kubernetes {
		d.Kubeconfig = filepath.Join(s.nodeKubeDir(n), "podrouter.kubeconfig")
	}
	d.PassCIDRs = s.PassCIDRs
	d.KubePasswordSecret = s.KubePasswordSecret
	d.AutoPeers, d.DrainWithdrawAfter = s.AutoPeers, s.DrainWithdrawAfter
	for k := 1; k <= s.ToRs; k++ {
		t4, n4 := LinkV4(k, n)
		t6, n6 := LinkV6(k, n)
		d.PeersV4 = append(d.PeersV4, nodePeer{ToR: k, Local: n4, Addr: t4})
		d.PeersV6 = append(d.PeersV6, nodePeer{ToR: k, Local: n6, Addr: t6})
	}
	return d
}

var podrouterTmpl = template.Must(template.New("podrouter").Parse(`# rendered by podrouter lab ({{.Lab}})
node:
  name: {{.Name}}
  routerID: {{.RouterID}}
{{- if .Kubeconfig}}
kubernetes:
  enabled: true
  kubeconfig: {{.Kubeconfig}}
  cniConfPath: {{.Dir}}/cni-k8s/10-podrouter.conflist
  cniDataDir: {{.Dir}}/cni-k8s/ipam
  statusInterval: 1s
  asnBase: 65000
{{- if .KubePasswordSecret}}
  namespace: podrouter
  passwordSecret: {{.KubePasswordSecret}}
{{- end}}
{{- else}}
podCIDRs: ["{{.PodV4}}", "{{.PodV6}}"]
{{- end}}
log: {format: text, level: info}
bgp:
  asn: {{.ASN}}
  listenPort: -1
  api: {address: "127.0.0.1:50051"}
{{- if .DrainWithdrawAfter}}
  drain: {mode: deprefer, asPathPrepend: 3, med: 100, withdrawAfter: {{.DrainWithdrawAfter}}}
{{- end}}
{{- if .AutoPeers}}
  autoPeers: {enabled: true, defaultGateways: false, asn: {{$.ToRASN}}, holdTime: 9s, keepaliveInterval: 3s, connectRetry: 1s{{$.PeerOpts}}}
{{- else}}
  peers:
{{- range $i, $p := .PeersV4}}
    - {address: "{{$p.Addr}}", asn: {{$.ToRASN}}, holdTime: 9s, keepaliveInterval: 3s, connectRetry: 1s{{$.PeerOpts}}}
    - {address: "{{(index $.PeersV6 $i).Addr}}", asn: {{$.ToRASN}}, holdTime: 9s, keepaliveInterval: 3s, connectRetry: 1s{{$.PeerOpts}}}
{{- end}}
{{- end}}
routes: {protocol: 201, metric: 20}
localAPI: {socket: {{.Dir}}/podrouter.sock}
metrics: {address: "{{(index .PeersV4 0).Local}}:9842", allowNonLoopback: true}
datapath:
  enabled: {{.Datapath}}
  pinDir: {{.PinDir}}
  uplinks: [{{range $i, $p := .PeersV4}}{{if $i}}, {{end}}up{{$p.ToR}}{{end}}]
{{- if .PassCIDRs}}
  passCIDRs: [{{range $i, $p := .PassCIDRs}}{{if $i}}, {{end}}"{{$p}}"{{end}}]
{{- end}}
`))

// BIRD as the node speaker: the same policy as podrouter's (export only the
// pod CIDRs, import only the default, install it in the kernel, ECMP over
// the ToRs). Timers match the podrouter config; "connect delay time 1"
// brings BIRD's first connect (default 5 s) in line with GoBGP's 1-2 s.
var birdTmpl = template.Must(template.New("bird").Parse(`# rendered by podrouter lab ({{.Lab}})
router id {{.RouterID}};
log "{{.Dir}}/bird.log" all;
timeformat log "%F %T.%3f";
debug protocols { states, events };

protocol device { scan time 10; }

protocol static pods4 { ipv4; route {{.PodV4}} blackhole; }
protocol static pods6 { ipv6; route {{.PodV6}} blackhole; }

filter default4 { if net = 0.0.0.0/0 then accept; reject; }
filter default6 { if net = ::/0 then accept; reject; }
filter pods4_out { if net = {{.PodV4}} then accept; reject; }
filter pods6_out { if net = {{.PodV6}} then accept; reject; }

protocol kernel kernel4 {
  ipv4 { import none; export filter default4; };
  merge paths on;
}
protocol kernel kernel6 {
  ipv6 { import none; export filter default6; };
  merge paths on;
}

template bgp tor {
  hold time 9;
  keepalive time 3;
  connect delay time 1;
  connect retry time 1;
}
{{range .PeersV4}}
protocol bgp tor{{.ToR}}_v4 from tor {
  local {{.Local}} as {{$.ASN}};
  neighbor {{.Addr}} as {{$.ToRASN}};
  ipv4 { import filter default4; export filter pods4_out; };
}
{{- end}}
{{range .PeersV6}}
protocol bgp tor{{.ToR}}_v6 from tor {
  local {{.Local}} as {{$.ASN}};
  neighbor {{.Addr}} as {{$.ToRASN}};
  ipv6 { import filter default6; export filter pods6_out; };
}
{{- end}}
`))

func render(t *template.Template, data any) ([]byte, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("render %s: %w", t.Name(), err)
	}
	return b.Bytes(), nil
}

// cniConfList is node n's CNI network configuration list, as a runtime
// would find it in /etc/cni/net.d: the one podrouter writes in Kubernetes
// mode (ptp + host-local, dual stack), with per-node IPAM state.
func (s Spec) cniConfList(n int) ([]byte, error) {
	return k8s.CNIConfig{
		PodCIDRs: PodCIDRs(n), MTU: 1500,
		DataDir: filepath.Join(s.StateDir(), NodeName(n), "cni", "ipam"),
	}.Render()
}
