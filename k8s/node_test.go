package k8s

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestTranslate(t *testing.T) {
	pfx := netip.MustParsePrefix
	base := func() *corev1.Node {
		return &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{}, Annotations: map[string]string{}},
			Spec:       corev1.NodeSpec{PodCIDR: "10.244.1.0/24", PodCIDRs: []string{"10.244.1.0/24", "fd00:10:244:1::/64"}},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeHostName, Address: "n1"},
				{Type: corev1.NodeInternalIP, Address: "fd00::11"},
				{Type: corev1.NodeInternalIP, Address: "192.0.2.11"},
			}},
		}
	}
	dual := []netip.Prefix{pfx("10.244.1.0/24"), pfx("fd00:10:244:1::/64")}
	rid := netip.MustParseAddr("192.0.2.11")
	opts := Options{DrainTaint: "podrouter.io/drain", ASNBase: 4200000000}
	tests := []struct {
		name     string
		mut      func(*corev1.Node)
		opts     *Options
		pods     []netip.Prefix
		drained  bool
		stateErr string
		peering  Peering
		peerErrs []string // substrings, one per error
	}{
		{name: "plain dual stack", pods: dual, peering: Peering{Rack: -1, RouterID: rid}},
		{name: "legacy podCIDR only", mut: func(n *corev1.Node) { n.Spec.PodCIDRs = nil },
			pods: []netip.Prefix{pfx("10.244.1.0/24")}, peering: Peering{Rack: -1, RouterID: rid}},
		{name: "no pod CIDR yet", mut: func(n *corev1.Node) { n.Spec.PodCIDRs, n.Spec.PodCIDR = nil, "" },
			peering: Peering{Rack: -1, RouterID: rid}},
		{name: "cordoned", mut: func(n *corev1.Node) { n.Spec.Unschedulable = true },
			pods: dual, drained: true, peering: Peering{Rack: -1, RouterID: rid}},
		{name: "drain taint by key", mut: func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: "podrouter.io/drain", Effect: corev1.TaintEffectNoSchedule}}
		}, pods: dual, drained: true, peering: Peering{Rack: -1, RouterID: rid}},
		{name: "drain taint key=value mismatch", opts: &Options{DrainTaint: "maint=bgp"}, mut: func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: "maint", Value: "disk", Effect: corev1.TaintEffectNoSchedule}}
		}, pods: dual, peering: Peering{Rack: -1, RouterID: rid}},
		{name: "drain taint key=value match", opts: &Options{DrainTaint: "maint=bgp"}, mut: func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: "maint", Value: "bgp", Effect: corev1.TaintEffectNoExecute}}
		}, pods: dual, drained: true, peering: Peering{Rack: -1, RouterID: rid}},
		{name: "other taint", mut: func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: "node.kubernetes.io/not-ready", Effect: corev1.TaintEffectNoSchedule}}
		}, pods: dual, peering: Peering{Rack: -1, RouterID: rid}},
		{name: "exclude from external LBs (empty value)", mut: func(n *corev1.Node) { n.Labels[LabelExcludeFromLB] = "" },
			pods: dual, drained: true, peering: Peering{Rack: -1, RouterID: rid}},
		{name: "rack label", mut: func(n *corev1.Node) { n.Labels[LabelRack] = "7" },
			pods: dual, peering: Peering{ASN: 4200000007, Rack: 7, RouterID: rid}},
		{name: "asn annotation wins over rack", mut: func(n *corev1.Node) {
			n.Labels[LabelRack] = "7"
			n.Annotations[AnnotationASN] = "65123"
		}, pods: dual, peering: Peering{ASN: 65123, Rack: 7, RouterID: rid}},
		{name: "router id and peers", mut: func(n *corev1.Node) {
			n.Annotations[AnnotationRouterID] = "10.255.0.1"
			n.Annotations[AnnotationPeers] = `[{"address":"192.0.2.1","asn":65001},{"address":"2001:db8::1","asn":65001}]`
		}, pods: dual, peering: Peering{Rack: -1, RouterID: netip.MustParseAddr("10.255.0.1"), ExtraPeers: []Peer{
			{Address: netip.MustParseAddr("192.0.2.1"), ASN: 65001}, {Address: netip.MustParseAddr("2001:db8::1"), ASN: 65001},
		}}},
		{name: "rack label with peer ASN base", opts: &Options{ASNBase: 4200000000, PeerASNBase: 4200100000}, mut: func(n *corev1.Node) { n.Labels[LabelRack] = "7" },
			pods: dual, peering: Peering{ASN: 4200000007, Rack: 7, RouterID: rid, PeerASN: 4200100007}},
		{name: "rack label with only the peer ASN base", opts: &Options{PeerASNBase: 65100}, mut: func(n *corev1.Node) { n.Labels[LabelRack] = "7" },
			pods: dual, peering: Peering{Rack: 7, RouterID: rid, PeerASN: 65107}},
		{name: "peer-asn annotation wins over rack", opts: &Options{PeerASNBase: 65100}, mut: func(n *corev1.Node) {
			n.Labels[LabelRack] = "7"
			n.Annotations[AnnotationPeerASN] = "65200"
		}, pods: dual, peering: Peering{Rack: 7, RouterID: rid, PeerASN: 65200}},
		{name: "peer-asn annotation malformed", mut: func(n *corev1.Node) { n.Annotations[AnnotationPeerASN] = "4294967295" },
			pods: dual, peerErrs: []string{`annotation podrouter.io/peer-asn: "4294967295" is not a usable ASN`}},
		// Malformed overrides: the state is still good, the peering is not.
		{name: "asn not a number", mut: func(n *corev1.Node) { n.Annotations[AnnotationASN] = "sixty-five" },
			pods: dual, peerErrs: []string{`annotation podrouter.io/asn: "sixty-five" is not a usable ASN`}},
		{name: "asn zero", mut: func(n *corev1.Node) { n.Annotations[AnnotationASN] = "0" },
			pods: dual, peerErrs: []string{"not a usable ASN"}},
		{name: "asn AS_TRANS", mut: func(n *corev1.Node) { n.Annotations[AnnotationASN] = "23456" },
			pods: dual, peerErrs: []string{"not 23456"}},
		{name: "rack negative", mut: func(n *corev1.Node) { n.Labels[LabelRack] = "-1" },
			pods: dual, peerErrs: []string{"label podrouter.io/rack: \"-1\" is not a rack number"}},
		{name: "rack without base", opts: &Options{}, mut: func(n *corev1.Node) { n.Labels[LabelRack] = "3" },
			pods: dual, peerErrs: []string{"neither kubernetes.asnBase nor kubernetes.peerASNBase is configured"}},
		{name: "rack beyond ASN range", mut: func(n *corev1.Node) { n.Labels[LabelRack] = "999999999" },
			pods: dual, peerErrs: []string{"beyond the 4-byte ASN range"}},
		{name: "router id v6", mut: func(n *corev1.Node) { n.Annotations[AnnotationRouterID] = "fd00::1" },
			pods: dual, peerErrs: []string{"router-id: \"fd00::1\" is not an IPv4 address"}},
		{name: "peers not JSON", mut: func(n *corev1.Node) { n.Annotations[AnnotationPeers] = "192.0.2.1@65001" },
			pods: dual, peerErrs: []string{"annotation podrouter.io/peers: want a JSON list"}},
		{name: "peers bad entries", mut: func(n *corev1.Node) {
			n.Annotations[AnnotationPeers] = `[{"address":"192.0.2.300","asn":65001},{"address":"192.0.2.1","asn":0},{"address":"192.0.2.2","asn":1,"port":179},{"address":"192.0.2.3","asn":1},{"address":"192.0.2.3","asn":2}]`
		}, pods: dual, peerErrs: []string{`[0].address: "192.0.2.300" is not an IP address; [1].asn: 0 is not a usable ASN; [2].port: unknown field; [4].address: 192.0.2.3 listed twice`}},
		{name: "two errors at once", mut: func(n *corev1.Node) {
			n.Annotations[AnnotationASN] = "x"
			n.Annotations[AnnotationPeers] = "{}"
		}, pods: dual, peerErrs: []string{"podrouter.io/asn", "podrouter.io/peers"}},
		// Unusable node specs (the API server validates these, but a
		// translation must not trust that).
		{name: "pod CIDR garbage", mut: func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.244.1.0/33"} },
			stateErr: `"10.244.1.0/33" is not a CIDR`, peering: Peering{Rack: -1, RouterID: rid}},
		{name: "pod CIDR host bits", mut: func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.244.1.1/24"} },
			stateErr: "is not a pod CIDR", peering: Peering{Rack: -1, RouterID: rid}},
		{name: "two v4 pod CIDRs", mut: func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.244.1.0/24", "10.244.2.0/24"} },
			stateErr: "more than one CIDR of the family", peering: Peering{Rack: -1, RouterID: rid}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := base()
			if tc.mut != nil {
				tc.mut(n)
			}
			o := opts
			if tc.opts != nil {
				o = *tc.opts
			}
			got := Translate(n, o)
			if tc.stateErr != "" {
				if got.StateErr == nil || !strings.Contains(got.StateErr.Error(), tc.stateErr) {
					t.Fatalf("state error = %v, want one containing %q", got.StateErr, tc.stateErr)
				}
			} else {
				if got.StateErr != nil {
					t.Fatalf("state error: %v", got.StateErr)
				}
				if got.State.Name != "n1" || !slices.Equal(got.State.PodCIDRs, tc.pods) || got.State.Drained != tc.drained {
					t.Errorf("state = %+v, want pods %v drained %v", got.State, tc.pods, tc.drained)
				}
			}
			if len(tc.peerErrs) > 0 {
				if len(got.PeeringErrs) != len(tc.peerErrs) {
					t.Fatalf("peering errors = %v, want %d", got.PeeringErrs, len(tc.peerErrs))
				}
				for i, want := range tc.peerErrs {
					if !strings.Contains(got.PeeringErrs[i].Error(), want) {
						t.Errorf("peering error %d = %q, want it to contain %q", i, got.PeeringErrs[i], want)
					}
				}
				return
			}
			if len(got.PeeringErrs) > 0 {
				t.Fatalf("peering errors: %v", got.PeeringErrs)
			}
			if !got.Peering.Equal(tc.peering) {
				t.Errorf("peering = %+v, want %+v", got.Peering, tc.peering)
			}
		})
	}
}

func TestPassword(t *testing.T) {
	for _, tc := range []struct {
		data map[string][]byte
		want string
		err  string
	}{
		{data: map[string][]byte{"password": []byte("s3cret\n")}, want: "s3cret"},
		{data: map[string][]byte{"pw": []byte("x")}, err: `no key "password" (keys: pw)`},
		{data: map[string][]byte{"password": []byte("\n")}, err: "is empty"},
		{data: map[string][]byte{"password": []byte(strings.Repeat("a", 81))}, err: "longer than TCP_MD5SIG_MAXKEYLEN"},
	} {
		got, err := password(tc.data, "password")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("password(%q) error = %v, want %q", tc.data, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("password(%q) = %q, %v; want %q", tc.data, got, err, tc.want)
		}
	}
}
