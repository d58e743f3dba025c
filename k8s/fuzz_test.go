package k8s

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FuzzTranslate feeds arbitrary pod CIDRs, labels and annotations of a
// Node to Translate. It must not panic, and whatever it accepts must be
// usable as is: pod CIDRs canonical, non-default, at most one per family;
// a router ID that is a unicast IPv4 address; extra peers with unicast,
// zone-less, unmapped, distinct addresses and usable ASNs; ASNs never 0,
// 23456 (AS_TRANS) or 4294967295.
func FuzzTranslate(f *testing.F) {
	f.Add("10.0.1.0/24", "fd00:10:0:1::/64", "65001", "192.168.255.1", `[{"address":"192.0.2.1","asn":65100}]`, "65100", "3", "10.1.2.3", uint32(4200000000), uint32(65100), false)
	f.Add("10.0.1.0/24", "", "", "", "", "", "", "192.168.1.1", uint32(0), uint32(0), true)
	f.Add("10.0.1.1/24", "10.0.2.0/24", "23456", "::1", `[{"address":"fe80::1%eth0","asn":1}]`, "0", "-1", "", uint32(1), uint32(1), false)
	f.Add("0.0.0.0/0", "::/0", " 65001 ", "0.0.0.0", `[{"address":"::ffff:192.0.2.1","asn":4294967295},{"address":"192.0.2.1","asn":1}]`, "4294967294", "999999999999", "224.0.0.1", uint32(4294967294), uint32(0), false)
	f.Add("10.0.1.0/24", "", "", "0.0.0.0", "", "", "", "", uint32(0), uint32(0), false)
	f.Add("10.0.1.0/24", "", "", "", `[{"address":"0.0.0.0","asn":65100},{"address":"ff02::1","asn":65100},{"address":"127.0.0.1","asn":65100}]`, "", "", "255.255.255.255", uint32(0), uint32(0), false)
	f.Add("", "", "", "", `[{"address":"192.0.2.1","asn":1,"x":2}]`, "", "", "", uint32(0), uint32(0), false)
	f.Fuzz(func(t *testing.T, cidr1, cidr2, asn, routerID, peers, peerASN, rack, internalIP string, asnBase, peerASNBase uint32, unsched bool) {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1", Labels: map[string]string{}, Annotations: map[string]string{}}}
		for _, c := range []string{cidr1, cidr2} {
			if c != "" {
				n.Spec.PodCIDRs = append(n.Spec.PodCIDRs, c)
			}
		}
		n.Spec.Unschedulable = unsched
		for k, v := range map[string]string{AnnotationASN: asn, AnnotationRouterID: routerID, AnnotationPeers: peers, AnnotationPeerASN: peerASN} {
			if v != "" {
				n.Annotations[k] = v
			}
		}
		if rack != "" {
			n.Labels[LabelRack] = rack
		}
		if internalIP != "" {
			n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: internalIP}}
		}
		tr := Translate(n, Options{DrainTaint: "drain", ASNBase: asnBase, PeerASNBase: peerASNBase})
		if tr.StateErr == nil {
			fams := map[bool]int{}
			for _, p := range tr.State.PodCIDRs {
				if !p.IsValid() || p.Masked() != p || p.Bits() == 0 || p.Addr().Zone() != "" {
					t.Errorf("accepted pod CIDR %v", p)
				}
				fams[p.Addr().Is4()]++
			}
			if fams[true] > 1 || fams[false] > 1 {
				t.Errorf("accepted %v: more than one CIDR per family", tr.State.PodCIDRs)
			}
		}
		if len(tr.PeeringErrs) > 0 {
			return
		}
		p := tr.Peering
		usableASN := func(a uint32) bool { return a != 23456 && a != 4294967295 }
		if !usableASN(p.ASN) || !usableASN(p.PeerASN) {
			t.Errorf("accepted ASN %d / peer ASN %d", p.ASN, p.PeerASN)
		}
		if p.RouterID.IsValid() && !unicast4(p.RouterID) {
			t.Errorf("accepted router ID %v (from %q / %q)", p.RouterID, routerID, internalIP)
		}
		seen := map[netip.Addr]bool{}
		for _, e := range p.ExtraPeers {
			a := e.Address
			if !a.IsValid() || a.Zone() != "" || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.IsLinkLocalUnicast() || seen[a] {
				t.Errorf("accepted extra peer address %v in %s", a, peers)
			}
			seen[a] = true
			if e.ASN == 0 || !usableASN(e.ASN) {
				t.Errorf("accepted extra peer ASN %d", e.ASN)
			}
		}
	})
}

func unicast4(a netip.Addr) bool {
	return a.Is4() && !a.IsUnspecified() && !a.IsMulticast() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}
