package routes

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// TestDiscoverPeers builds a node with four uplinks addressed the ways
// fabrics do (/31, /127, "peer" address, /24 with a boot-time default
// gateway and a link-local IPv6 default) plus podrouter's own default, and
// checks what bgp.autoPeers would peer with.
func TestDiscoverPeers(t *testing.T) {
	tn := newTestNet(t, 4)
	ctx := context.Background()
	tn.ip("addr", "add", "192.168.7.1/31", "dev", "up1")
	tn.ip("-6", "addr", "add", "fd00:7::1/127", "dev", "up1", "nodad")
	tn.ip("addr", "add", "172.16.0.2", "peer", "172.16.0.1", "dev", "up2")
	// A default from the OS network configuration (static, metric 1024) on
	// up3, a link-local IPv6 one on up4 (as from a router advertisement).
	tn.ip("route", "add", "default", "via", "10.3.0.1", "dev", "up3", "metric", "1024", "proto", "static")
	tn.ip("-6", "route", "add", "default", "via", "fe80::1", "dev", "up4", "metric", "1024", "proto", "ra")
	// podrouter's own default (protocol 201) is never a source.
	if _, err := tn.inst.SetDefault(ctx, FamilyV6, addrs("2001:db8:2::1")); err != nil {
		t.Fatal(err)
	}

	names := func(ps []DiscoveredPeer) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Address.String()+"/"+p.Link+"/"+p.Source)
		}
		return out
	}
	peers, skipped, err := tn.inst.DiscoverPeers(ctx, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"10.3.0.1/up3/default-gateway",
		"172.16.0.1/up2/point-to-point",
		"192.168.7.0/up1/point-to-point",
		"fd00:7::/up1/point-to-point",
	}
	if got := names(peers); !slices.Equal(got, want) {
		t.Errorf("every link, with gateways:\n got %v\nwant %v", got, want)
	}
	for _, p := range peers {
		if p.Address.String() == "192.168.7.0" && p.Local.String() != "192.168.7.1" {
			t.Errorf("local address of the /31 peer: %s", p.Local)
		}
	}
	if len(skipped) != 1 || !strings.Contains(skipped[0], "fe80::1%up4: link-local") {
		t.Errorf("skipped: %q", skipped)
	}

	// Restricted to up1 and up3, without gateways; a missing link is reported.
	peers, skipped, err = tn.inst.DiscoverPeers(ctx, []string{"up1", "up3", "nosuch0"}, false)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"192.168.7.0/up1/point-to-point", "fd00:7::/up1/point-to-point"}
	if got := names(peers); !slices.Equal(got, want) {
		t.Errorf("up1+up3, no gateways:\n got %v\nwant %v", got, want)
	}
	if !slices.Equal(skipped, []string{"nosuch0: no such link"}) {
		t.Errorf("skipped: %q", skipped)
	}
}
