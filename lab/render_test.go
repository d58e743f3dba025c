package lab

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/podrouter/podrouter/config"
)

func TestAddressing(t *testing.T) {
	for _, tc := range []struct {
		k, n        int
		tor4, node4 string
		tor6, node6 string
	}{
		{1, 1, "192.168.1.0", "192.168.1.1", "fd00:1:1::1", "fd00:1:1::2"},
		{2, 3, "192.168.2.4", "192.168.2.5", "fd00:2:3::1", "fd00:2:3::2"},
	} {
		t4, n4 := LinkV4(tc.k, tc.n)
		t6, n6 := LinkV6(tc.k, tc.n)
		if t4.String() != tc.tor4 || n4.String() != tc.node4 || t6.String() != tc.tor6 || n6.String() != tc.node6 {
			t.Errorf("tor%d/node%d: got %s %s %s %s", tc.k, tc.n, t4, n4, t6, n6)
		}
	}
	if got := PodCIDRs(2); got[0].String() != "10.0.2.0/24" || got[1].String() != "fd00:10:0:2::/64" {
		t.Errorf("PodCIDRs(2) = %v", got)
	}
	s := Spec{Name: "t3f9"}.WithDefaults()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if s.PodNS(1, 2) != "t3f9-n1p2" || s.ToRNS(2) != "t3f9-tor2" {
		t.Errorf("names: %s %s", s.PodNS(1, 2), s.ToRNS(2))
	}
	re := nsRE("lab")
	for ns, want := range map[string]bool{"lab-tor1": true, "lab-n3": true, "lab-n3p2": true, "lab-x-n1": false, "lab2-n1": false, "lab-n1-x": false} {
		if re.MatchString(ns) != want {
			t.Errorf("nsRE(lab) on %q: want %v", ns, want)
		}
	}
	for _, bad := range []Spec{{Name: ""}, {Name: "a-b"}, {Name: "toolongname"}, {Name: "x", ToRs: 3}, {Name: "x", Speaker: "gobgp"}} {
		if err := bad.WithDefaults().Validate(); err == nil {
			t.Errorf("spec %+v: want error", bad)
		}
	}
}

// The rendered podrouter config must pass the daemon's strict parser.
func TestPodrouterConfigParses(t *testing.T) {
	s := Spec{Name: "t1", ToRs: 2, Datapath: true}.WithDefaults()
	b, err := render(podrouterTmpl, s.nodeData(2))
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if c.Node.Name != "node2" || c.BGP.ASN != 65002 || len(c.BGP.Peers) != 4 || !c.Datapath.Enabled || c.BGP.ListenPort != -1 {
		t.Errorf("unexpected config %+v\n%s", c, b)
	}
	want := []string{"192.168.1.2", "fd00:1:2::1", "192.168.2.2", "fd00:2:2::1"}
	for i, p := range c.BGP.Peers {
		if p.Address.String() != want[i] || p.ASN != ToRASN {
			t.Errorf("peer %d = %+v, want %s", i, p, want[i])
		}
	}
	if c.LocalAPI.Socket != "/run/podrouter-lab/t1/node2/podrouter.sock" || c.Datapath.PinDir != "/run/podrouter-lab/t1/bpffs/node2" {
		t.Errorf("paths: %q %q", c.LocalAPI.Socket, c.Datapath.PinDir)
	}
}

// TestPodrouterConfigKubernetesAutoPeers: the Kubernetes-mode rendering
// with autoPeers, deprefer drain and a per-node kubeconfig parses.
func TestPodrouterConfigKubernetesAutoPeers(t *testing.T) {
	s := Spec{Name: "t1", ToRs: 2, Kubeconfig: "/k/{node}.kubeconfig", AutoPeers: true, DrainWithdrawAfter: 3 * time.Second}.WithDefaults()
	b, err := render(podrouterTmpl, s.nodeData(3))
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	ap := c.BGP.AutoPeers
	if len(c.BGP.Peers) != 0 || !ap.Enabled || ap.ASN != ToRASN || *ap.DefaultGateways || strings.Join(ap.Interfaces, ",") != "up1,up2" {
		t.Errorf("autoPeers: %+v peers %+v\n%s", ap, c.BGP.Peers, b)
	}
	if d := c.BGP.Drain; d.Mode != config.DrainDeprefer || d.WithdrawAfter != 3*time.Second || d.MED != 100 {
		t.Errorf("drain: %+v", d)
	}
	if c.Kubernetes.Kubeconfig != "/k/node3.kubeconfig" || c.Kubernetes.ASNBase != 65000 {
		t.Errorf("kubernetes: %+v", c.Kubernetes)
	}
}

func TestFRRConfig(t *testing.T) {
	s := Spec{Name: "t1", Nodes: 2}.WithDefaults()
	b, err := render(bgpdTmpl, s.torData(1))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	for _, line := range []string{
		"frr defaults datacenter",
		"router bgp 65100",
		" neighbor 192.168.1.3 remote-as 65002",
		" neighbor fd00:1:2::2 peer-group NODES6",
		"  neighbor NODES4 default-originate",
		"ip prefix-list PODS4 seq 5 permit 10.0.0.0/8 ge 24 le 24",
		"ipv6 prefix-list PODS6 seq 5 permit fd00:10::/32 ge 64 le 64",
		" bgp bestpath as-path multipath-relax",
		"  maximum-paths 8",
	} {
		if !strings.Contains(conf, line+"\n") {
			t.Errorf("bgpd config lacks %q:\n%s", line, conf)
		}
	}
	if strings.Contains(conf, "ebgp-requires-policy") {
		t.Error("bgpd config must keep ebgp-requires-policy on")
	}
}

func TestCNIConfList(t *testing.T) {
	s := Spec{Name: "t1"}.WithDefaults()
	b, err := s.cniConfList(3)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		CNIVersion, Name string
		Plugins          []struct {
			Type   string
			IPMasq bool
			MTU    int
			IPAM   struct {
				DataDir string
				Ranges  [][]struct{ Subnet string }
			}
		}
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	p := c.Plugins[0]
	if c.CNIVersion != "1.0.0" || c.Name != "podrouter" || p.Type != "ptp" || p.IPMasq || p.MTU != 1500 ||
		p.IPAM.DataDir != "/run/podrouter-lab/t1/node3/cni/ipam" || len(p.IPAM.Ranges) != 2 ||
		netip.MustParsePrefix(p.IPAM.Ranges[1][0].Subnet) != PodCIDRs(3)[1] {
		t.Errorf("unexpected conflist:\n%s", b)
	}
}

// TestBFDConfig: with Spec.BFD the ToR renders a bfdd profile and turns
// BFD on for both node peer groups, and the node config's peers (and
// autoPeers) carry the same timers.
func TestBFDConfig(t *testing.T) {
	s := Spec{Name: "t1", ToRs: 2, BFD: true}.WithDefaults()
	b, err := render(bgpdTmpl, s.torData(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{" neighbor NODES4 bfd", " neighbor NODES4 bfd profile NODES", " neighbor NODES6 bfd", " neighbor NODES6 bfd profile NODES"} {
		if !strings.Contains(string(b), line+"\n") {
			t.Errorf("bgpd config lacks %q:\n%s", line, b)
		}
	}
	b, err = render(bfddTmpl, s.torData(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"bfd", " profile NODES", "  detect-multiplier 3", "  receive-interval 300", "  transmit-interval 300"} {
		if !strings.Contains(string(b), "\n"+line+"\n") {
			t.Errorf("bfdd config lacks %q:\n%s", line, b)
		}
	}
	want := config.BFD{Enabled: true, MinTx: 300 * time.Millisecond, MinRx: 300 * time.Millisecond, Multiplier: 3}
	for _, auto := range []bool{false, true} {
		s.AutoPeers = auto
		b, err = render(podrouterTmpl, s.nodeData(1))
		if err != nil {
			t.Fatal(err)
		}
		c, err := config.Parse(b)
		if err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		peers := append(c.BGP.Peers, c.BGP.AutoPeers.Peer)
		if auto {
			peers = peers[len(peers)-1:]
		} else {
			peers = peers[:len(peers)-1]
		}
		for _, p := range peers {
			if p.BFD != want {
				t.Errorf("autoPeers %v: peer %q bfd %+v, want %+v", auto, p.Address, p.BFD, want)
			}
		}
	}
	if b, _ := render(bgpdTmpl, Spec{Name: "t1"}.WithDefaults().torData(1)); strings.Contains(string(b), " bfd") {
		t.Errorf("bgpd config without Spec.BFD mentions bfd:\n%s", b)
	}
	if err := (Spec{Name: "t1", Speaker: SpeakerBIRD, BFD: true}).WithDefaults().Validate(); err == nil {
		t.Error("BFD with BIRD nodes accepted")
	}
}
