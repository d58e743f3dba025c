package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/podrouter/podrouter/config"
	"github.com/podrouter/podrouter/k8s"
	"github.com/podrouter/podrouter/routes"
)

type fakeDiscoverer struct{ peers []routes.DiscoveredPeer }

func (f *fakeDiscoverer) DiscoverPeers(context.Context, []string, bool) ([]routes.DiscoveredPeer, []string, error) {
	return f.peers, nil, nil
}

// TestPeeringDesired: discovered peers take the autoPeers settings and
// their local address, an explicit peer wins for the same address, the
// Node's extra peers and ASN apply on top, and the Secret's password
// covers every peer.
func TestPeeringDesired(t *testing.T) {
	a := netip.MustParseAddr
	cfg, err := config.Parse([]byte(`
node: {name: n1, routerID: 10.255.0.1}
podCIDRs: [10.0.1.0/24]
bgp:
  asn: 65001
  peers:
    - {address: 192.168.1.0, asn: 65100, holdTime: 30s}
  autoPeers: {enabled: true, asn: 65200, holdTime: 6s, ttlMin: 255, interfaces: [up1]}
`))
	if err != nil {
		t.Fatal(err)
	}
	base := speakerConfig(cfg)
	disc := &fakeDiscoverer{peers: []routes.DiscoveredPeer{
		{Address: a("192.168.1.0"), Local: a("192.168.1.1"), Link: "up1", Source: "point-to-point"},
		{Address: a("fd00:7::"), Local: a("fd00:7::1"), Link: "up1", Source: "point-to-point"},
	}}
	p := newPeering(slog.New(slog.NewTextHandler(io.Discard, nil)), cfg, base, disc)
	ctx := context.Background()
	if !p.Discover(ctx) || p.Discover(ctx) {
		t.Fatal("Discover must report a change once")
	}
	p.SetKube(ctx, k8s.Peering{ASN: 65077, Rack: -1, ExtraPeers: []k8s.Peer{{Address: a("203.0.113.1"), ASN: 65300}}})
	p.SetPassword(ctx, "s3cret")
	got := p.Desired()
	if got.ASN != 65077 || len(got.Peers) != 3 {
		t.Fatalf("desired: %+v", got)
	}
	want := []struct {
		addr  string
		asn   uint32
		hold  time.Duration
		local string
		ttl   uint8
	}{
		{"192.168.1.0", 65100, 30 * time.Second, "invalid IP", 0}, // explicit wins
		{"fd00:7::", 65200, 6 * time.Second, "fd00:7::1", 255},    // discovered
		{"203.0.113.1", 65300, 30 * time.Second, "invalid IP", 0}, // Node annotation (settings of the first peer)
	}
	for i, w := range want {
		pc := got.Peers[i]
		if pc.Address != a(w.addr) || pc.ASN != w.asn || pc.HoldTime != w.hold || pc.LocalAddress.String() != w.local ||
			pc.TTLMin != w.ttl || pc.Password != "s3cret" {
			t.Errorf("peer %d = %+v, want %+v with the password", i, pc, w)
		}
	}
	// This rack's ToRs have their own ASN (peerASNBase + rack, or the
	// peer-asn annotation): only the discovered peer takes it.
	p.SetKube(ctx, k8s.Peering{ASN: 65077, Rack: 7, PeerASN: 65107, ExtraPeers: []k8s.Peer{{Address: a("203.0.113.1"), ASN: 65300}}})
	got = p.Desired()
	if got.Peers[0].ASN != 65100 || got.Peers[1].ASN != 65107 || got.Peers[2].ASN != 65300 {
		t.Errorf("peer ASNs with a rack peer ASN: %d %d %d, want 65100 65107 65300", got.Peers[0].ASN, got.Peers[1].ASN, got.Peers[2].ASN)
	}
}
