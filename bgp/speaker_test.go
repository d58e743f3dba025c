package bgp

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/podrouter/podrouter/health"
)

type countKicker struct{ ch chan struct{} }

func (k *countKicker) Kick() {
	select {
	case k.ch <- struct{}{}:
	default:
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func freePort(t *testing.T, ip string) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// fakeToR is a plain GoBGP speaker playing a top-of-rack router: it accepts
// everything and originates whatever the test gives it.
type fakeToR struct {
	srv  *server.BgpServer
	addr netip.Addr
	port uint16
}

func newToR(t *testing.T, addr string, asn uint32, nodeAddr string, nodeASN uint32, originate ...string) *fakeToR {
	t.Helper()
	return newToRWithPassword(t, addr, asn, nodeAddr, nodeASN, "", originate...)
}

func newToRWithPassword(t *testing.T, addr string, asn uint32, nodeAddr string, nodeASN uint32, password string, originate ...string) *fakeToR {
	t.Helper()
	port := freePort(t, addr)
	srv := server.NewBgpServer(server.LoggerOption(slog.New(slog.NewTextHandler(io.Discard, nil)), nil))
	go srv.Serve()
	ctx := context.Background()
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: asn, RouterId: addr, ListenPort: int32(port), ListenAddresses: []string{addr},
	}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: nodeAddr, PeerAsn: nodeASN, AuthPassword: password},
		Transport: &api.Transport{PassiveMode: true, LocalAddress: addr},
		Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: 9, KeepaliveInterval: 3, ConnectRetry: 1}},
	}}); err != nil {
		t.Fatal(err)
	}
	tor := &fakeToR{srv: srv, addr: netip.MustParseAddr(addr), port: port}
	for _, p := range originate {
		tor.originate(t, p, addr)
	}
	return tor
}

func (r *fakeToR) originate(t *testing.T, prefix, nexthop string) {
	t.Helper()
	nlri, err := bgp.NewIPAddrPrefix(netip.MustParsePrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	nh, _ := bgp.NewPathAttributeNextHop(netip.MustParseAddr(nexthop))
	if _, err := r.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{{
		Family: bgp.RF_IPv4_UC, Nlri: nlri,
		Attrs: []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(0), nh},
	}}}); err != nil {
		t.Fatal(err)
	}
}

// rib returns the prefixes in r's global RIB learned from peers.
func (r *fakeToR) rib(t *testing.T) []string {
	t.Helper()
	var out []string
	err := r.srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: bgp.RF_IPv4_UC},
		func(n bgp.NLRI, paths []*apiutil.Path) {
			for _, p := range paths {
				if p.PeerAddress.IsValid() && !p.Withdrawal {
					out = append(out, n.String())
					break
				}
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func (r *fakeToR) peerConfig(asn uint32) PeerConfig {
	return PeerConfig{
		Address: r.addr, Port: r.port, ASN: asn, LocalAddress: netip.MustParseAddr("127.0.0.1"),
		HoldTime: 9 * time.Second, KeepaliveInterval: 3 * time.Second, ConnectRetry: time.Second,
		GracefulRestart: true, RestartTime: 120 * time.Second,
	}
}

func eventually(t *testing.T, what string, timeout time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func startNode(t *testing.T, peers []PeerConfig, pods ...string) *Speaker {
	t.Helper()
	return startNodeWith(t, func(*Config) {}, peers, pods...)
}

func startNodeWith(t *testing.T, edit func(*Config), peers []PeerConfig, pods ...string) *Speaker {
	t.Helper()
	api := "127.0.0.1:" + strconv.Itoa(int(freePort(t, "127.0.0.1")))
	cfg := Config{
		RouterID: netip.MustParseAddr("192.0.2.1"), ASN: 65001, ListenPort: -1,
		APIAddress: api, Peers: peers, LogLevel: slog.LevelWarn,
	}
	edit(&cfg)
	s, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	var ps []netip.Prefix
	for _, p := range pods {
		ps = append(ps, netip.MustParsePrefix(p))
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.SetAdvertisements(ctx, ps); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, &countKicker{ch: make(chan struct{}, 1)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); s.Close() })
	return s
}

func established(t *testing.T, s *Speaker, n int) {
	t.Helper()
	eventually(t, "sessions established", 20*time.Second, func() bool {
		ps, err := s.Peers(context.Background())
		if err != nil {
			return false
		}
		up := 0
		for _, p := range ps {
			if p.State == health.SessionEstablished {
				up++
			}
		}
		return up == n
	})
}

// TestDownwardDefaultNoTransit: a node between two ToRs advertises its pod
// CIDR to both, imports only the default from each (ECMP over both), and
// never re-exports what one ToR sent to the other.
func TestDownwardDefaultNoTransit(t *testing.T) {
	const nodeASN = 65001
	torA := newToR(t, "127.0.0.2", 65100, "127.0.0.1", nodeASN, "0.0.0.0/0", "10.99.0.0/16", "198.51.100.0/24")
	torB := newToR(t, "127.0.0.3", 65200, "127.0.0.1", nodeASN, "0.0.0.0/0", "203.0.113.0/24")
	node := startNode(t, []PeerConfig{torA.peerConfig(65100), torB.peerConfig(65200)}, "10.0.1.0/24")
	established(t, node, 2)

	eventually(t, "both defaults imported", 10*time.Second, func() bool {
		v4, _, err := node.Defaults(context.Background())
		return err == nil && slices.Equal(v4, []netip.Addr{torA.addr, torB.addr})
	})
	eventually(t, "pod CIDR at both ToRs", 10*time.Second, func() bool {
		return slices.Equal(torA.rib(t), []string{"10.0.1.0/24"}) && slices.Equal(torB.rib(t), []string{"10.0.1.0/24"})
	})
	// Give a leak time to show up, then check again: ToR A must not have
	// learned B's routes through the node, nor B A's.
	time.Sleep(time.Second)
	if got := torA.rib(t); !slices.Equal(got, []string{"10.0.1.0/24"}) {
		t.Errorf("ToR A learned %v from the node, want only the pod CIDR (transit leak)", got)
	}
	if got := torB.rib(t); !slices.Equal(got, []string{"10.0.1.0/24"}) {
		t.Errorf("ToR B learned %v from the node, want only the pod CIDR (transit leak)", got)
	}
	ps, err := node.Peers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		want := map[netip.Addr][2]uint64{torA.addr: {3, 1}, torB.addr: {2, 1}}[p.Address]
		if p.Received != want[0] || p.Accepted != want[1] || p.Advertised != 1 {
			t.Errorf("peer %s: received/accepted/advertised = %d/%d/%d, want %d/%d/1", p.Address, p.Received, p.Accepted, p.Advertised, want[0], want[1])
		}
	}

	// The default goes away from A: only B's next hop is left.
	nlri, _ := bgp.NewIPAddrPrefix(netip.MustParsePrefix("0.0.0.0/0"))
	nh, _ := bgp.NewPathAttributeNextHop(torA.addr)
	if err := torA.srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{{
		Family: bgp.RF_IPv4_UC, Nlri: nlri, Attrs: []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(0), nh}, Withdrawal: true,
	}}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "default from A withdrawn", 10*time.Second, func() bool {
		v4, _, _ := node.Defaults(context.Background())
		return slices.Equal(v4, []netip.Addr{torB.addr})
	})
}

// TestAdvertisementsFollowDesiredState walks pod CIDR sets and checks the
// ToR's RIB follows, including drain and undrain.
func TestAdvertisementsFollowDesiredState(t *testing.T) {
	tor := newToR(t, "127.0.0.4", 65100, "127.0.0.1", 65001, "0.0.0.0/0")
	node := startNode(t, []PeerConfig{tor.peerConfig(65100)})
	established(t, node, 1)
	ctx := context.Background()
	steps := [][]string{
		{"10.0.1.0/24"},
		{"10.0.1.0/24", "10.0.9.0/24"},
		{"10.0.9.0/24"},
		{},
		{"10.0.1.0/24"},
		{"10.0.1.0/24"}, // idempotent
	}
	for i, step := range steps {
		var ps []netip.Prefix
		for _, p := range step {
			ps = append(ps, netip.MustParsePrefix(p))
		}
		if err := node.SetAdvertisements(ctx, ps); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		want := slices.Sorted(slices.Values(step))
		eventually(t, "ToR RIB "+strconv.Itoa(i), 10*time.Second, func() bool {
			got := tor.rib(t)
			return slices.Equal(got, want) || (len(got) == 0 && len(want) == 0)
		})
	}
	start := time.Now()
	if err := node.SetDrained(ctx, true); err != nil {
		t.Fatal(err)
	}
	eventually(t, "drained", 2*time.Second, func() bool { return len(tor.rib(t)) == 0 })
	t.Logf("drain withdrew the pod CIDR from the ToR in %s", time.Since(start))
	if err := node.SetDrained(ctx, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "undrained", 5*time.Second, func() bool { return slices.Equal(tor.rib(t), []string{"10.0.1.0/24"}) })
}

// TestMaxPrefixBackoff: a peer that sends more than its limit is closed,
// counted, and re-enabled after the back-off.
func TestMaxPrefixBackoff(t *testing.T) {
	tor := newToR(t, "127.0.0.5", 65100, "127.0.0.1", 65001, "0.0.0.0/0")
	pc := tor.peerConfig(65100)
	pc.MaxPrefix, pc.MaxPrefixWarnPct, pc.MaxPrefixRestart = 3, 50, 2*time.Second
	node := startNode(t, []PeerConfig{pc}, "10.0.1.0/24")
	established(t, node, 1)
	for i := range 5 {
		tor.originate(t, "10.200."+strconv.Itoa(i)+".0/24", "127.0.0.5")
	}
	eventually(t, "max-prefix trip", 10*time.Second, func() bool {
		ps, _ := node.Peers(context.Background())
		return len(ps) == 1 && ps[0].MaxPrefixTrips >= 1
	})
	// The ToR withdraws its extra routes; after the back-off the session
	// must come back by itself.
	for i := range 5 {
		nlri, _ := bgp.NewIPAddrPrefix(netip.MustParsePrefix("10.200." + strconv.Itoa(i) + ".0/24"))
		nh, _ := bgp.NewPathAttributeNextHop(tor.addr)
		_ = tor.srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{{
			Family: bgp.RF_IPv4_UC, Nlri: nlri, Attrs: []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(0), nh}, Withdrawal: true,
		}}})
	}
	established(t, node, 1)
}

func TestPolicyShape(t *testing.T) {
	req := buildPolicies([]netip.Prefix{netip.MustParsePrefix("10.0.1.0/24")})
	var sets []string
	for _, d := range req.DefinedSets {
		sets = append(sets, d.Name)
	}
	if want := []string{setDefaultV4, setDefaultV6, setPodCIDRsV4}; !slices.Equal(sets, want) {
		t.Errorf("sets %v, want %v (no empty v6 pod set)", sets, want)
	}
	for _, a := range assignments() {
		if a.DefaultAction != api.RouteAction_ROUTE_ACTION_REJECT || a.Name != "global" {
			t.Errorf("assignment %v: want global default reject", a)
		}
	}
	if d := req.DefinedSets[0].Prefixes[0]; d.MaskLengthMin != 0 || d.MaskLengthMax != 0 {
		t.Errorf("default set %v must match /0 exactly", d)
	}
}

func TestIsDefault(t *testing.T) {
	for p, want := range map[string]bool{
		"0.0.0.0/0": true, "::/0": true, "0.0.0.0/1": false, "10.0.0.0/0": false, "::/1": false, "10.0.0.0/8": false,
	} {
		pp, err := netip.ParsePrefix(p)
		if err != nil {
			pp = netip.PrefixFrom(netip.MustParseAddr("10.0.0.0"), 0)
		}
		if got := IsDefault(pp); got != want {
			t.Errorf("IsDefault(%s) = %v, want %v", p, got, want)
		}
	}
}

// TestSetPeersLive: peers are added, re-keyed (TCP-MD5) and removed while
// the speaker runs, without touching the sessions that did not change.
func TestSetPeersLive(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("TCP-MD5 on loopback needs root (CI runs as root)")
	}
	torA := newToR(t, "127.0.0.6", 65100, "127.0.0.1", 65001, "0.0.0.0/0")
	torB := newToRWithPassword(t, "127.0.0.7", 65200, "127.0.0.1", 65001, "rotated2", "0.0.0.0/0")
	a := torA.peerConfig(65100)
	node := startNode(t, []PeerConfig{a}, "10.0.1.0/24")
	established(t, node, 1)
	ctx := context.Background()
	upSince := func(addr netip.Addr) time.Duration {
		ps, _ := node.Peers(ctx)
		for _, p := range ps {
			if p.Address == addr {
				return p.Uptime
			}
		}
		return -1
	}
	b := torB.peerConfig(65200)
	b.Password = "stale1"
	if err := node.SetPeers(ctx, []PeerConfig{a, b}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second)
	if ps, _ := node.Peers(ctx); len(ps) != 2 || ps[1].State == health.SessionEstablished {
		t.Fatalf("session with the wrong TCP-MD5 key came up: %+v", ps)
	}
	b.Password = "rotated2"
	if err := node.SetPeers(ctx, []PeerConfig{a, b}); err != nil {
		t.Fatal(err)
	}
	established(t, node, 2)
	if up := upSince(a.Address); up < 3*time.Second {
		t.Errorf("unchanged peer A was reset (uptime %s)", up)
	}
	if err := node.SetPeers(ctx, []PeerConfig{b}); err != nil {
		t.Fatal(err)
	}
	ps, err := node.Peers(ctx)
	if err != nil || len(ps) != 1 || ps[0].Address != b.Address {
		t.Fatalf("after removing A: %+v %v", ps, err)
	}
	eventually(t, "pod CIDR at the re-keyed ToR", 10*time.Second, func() bool {
		return slices.Equal(torB.rib(t), []string{"10.0.1.0/24"})
	})
}

// learnedPath is what a fake ToR holds for one prefix from a peer.
type learnedPath struct {
	asPath      []uint32
	med         uint32
	hasMED      bool
	communities []uint32
}

// path returns the attributes of the path r learned for prefix, if any.
func (r *fakeToR) path(t *testing.T, prefix string) (learnedPath, bool) {
	t.Helper()
	var out learnedPath
	found := false
	err := r.srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: bgp.RF_IPv4_UC},
		func(n bgp.NLRI, paths []*apiutil.Path) {
			if n.String() != prefix {
				return
			}
			for _, p := range paths {
				if !p.PeerAddress.IsValid() || p.Withdrawal {
					continue
				}
				found = true
				for _, a := range p.Attrs {
					switch a := a.(type) {
					case *bgp.PathAttributeAsPath:
						for _, seg := range a.Value {
							out.asPath = append(out.asPath, seg.GetAS()...)
						}
					case *bgp.PathAttributeMultiExitDisc:
						out.med, out.hasMED = a.Value, true
					case *bgp.PathAttributeCommunities:
						out.communities = append(out.communities, a.Value...)
					}
				}
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	return out, found
}

// TestDrainDeprefer: in deprefer mode a drain first re-advertises the pod
// CIDR with the AS path prepended, the MED and the GRACEFUL_SHUTDOWN
// community, withdraws it WithdrawAfter later, and an undrain in either
// phase restores the plain advertisement.
func TestDrainDeprefer(t *testing.T) {
	tor := newToR(t, "127.0.0.7", 65100, "127.0.0.1", 65001, "0.0.0.0/0")
	const after = 1500 * time.Millisecond
	node := startNodeWith(t, func(c *Config) {
		c.Drain = DrainConfig{Mode: DrainDeprefer, ASPathPrepend: 3, MED: 500, GracefulShutdown: true, WithdrawAfter: after}
	}, []PeerConfig{tor.peerConfig(65100)}, "10.0.1.0/24")
	established(t, node, 1)
	ctx := context.Background()
	plain := func() bool {
		p, ok := tor.path(t, "10.0.1.0/24")
		return ok && slices.Equal(p.asPath, []uint32{65001}) && !p.hasMED && len(p.communities) == 0
	}
	depreferred := func() bool {
		p, ok := tor.path(t, "10.0.1.0/24")
		return ok && slices.Equal(p.asPath, []uint32{65001, 65001, 65001, 65001}) && p.hasMED && p.med == 500 &&
			slices.Equal(p.communities, []uint32{CommunityGracefulShutdown})
	}
	eventually(t, "plain advertisement", 10*time.Second, plain)

	for round, undrainWhile := range []string{"depreferred", "withdrawn"} {
		start := time.Now()
		if err := node.SetDrained(ctx, true); err != nil {
			t.Fatal(err)
		}
		eventually(t, "depreferred advertisement", 2*time.Second, depreferred)
		if d := node.DrainStatus(); d.State != health.DrainDepreferred || d.WithdrawIn <= 0 || d.WithdrawIn > after {
			t.Errorf("round %d: drain %+v", round, d)
		}
		if err := node.SetDrained(ctx, true); err != nil { // a second drain changes nothing
			t.Fatal(err)
		}
		if undrainWhile == "withdrawn" {
			eventually(t, "withdrawn after the deprefer phase", 5*time.Second, func() bool {
				_, ok := tor.path(t, "10.0.1.0/24")
				return !ok
			})
			if took := time.Since(start); took < after {
				t.Errorf("withdrawn %s after the drain, before WithdrawAfter %s", took, after)
			}
			if d := node.DrainStatus(); d.State != health.DrainWithdrawn {
				t.Errorf("drain state %v after the withdraw", d.State)
			}
		}
		if err := node.SetDrained(ctx, false); err != nil {
			t.Fatal(err)
		}
		eventually(t, "plain advertisement after undrain ("+undrainWhile+")", 5*time.Second, plain)
		if undrainWhile == "depreferred" {
			// The cancelled timer must not withdraw later.
			time.Sleep(after + 500*time.Millisecond)
			if !plain() {
				t.Fatal("pod CIDR withdrawn after an undrain cancelled the drain")
			}
		}
	}

	// DrainAndWait (the daemon's shutdown drain) returns once withdrawn.
	start := time.Now()
	if err := node.DrainAndWait(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < after {
		t.Errorf("DrainAndWait returned after %s, before WithdrawAfter %s", took, after)
	}
	eventually(t, "withdrawn by DrainAndWait", 2*time.Second, func() bool {
		_, ok := tor.path(t, "10.0.1.0/24")
		return !ok
	})
}

// TestSetIdentity moves a node to another ASN and peer set: the BGP server
// restarts with the new ASN, the new ToR (which only accepts that ASN)
// learns the pod CIDR with it, the old ToR's session is gone, and the
// gRPC API serves again.
func TestSetIdentity(t *testing.T) {
	torOld := newToR(t, "127.0.0.8", 65100, "127.0.0.1", 65001, "0.0.0.0/0")
	torNew := newToR(t, "127.0.0.9", 65200, "127.0.0.1", 65077, "0.0.0.0/0")
	node := startNode(t, []PeerConfig{torOld.peerConfig(65100)}, "10.0.1.0/24")
	established(t, node, 1)
	eventually(t, "pod CIDR at the old ToR", 10*time.Second, func() bool { return slices.Equal(torOld.rib(t), []string{"10.0.1.0/24"}) })

	ctx := context.Background()
	rid := netip.MustParseAddr("192.0.2.77")
	if err := node.SetIdentity(ctx, 65077, rid, []PeerConfig{torNew.peerConfig(65200)}); err != nil {
		t.Fatal(err)
	}
	if asn, r := node.LocalIdentity(); asn != 65077 || r != rid {
		t.Fatalf("identity %d/%s after SetIdentity", asn, r)
	}
	established(t, node, 1)
	eventually(t, "pod CIDR at the new ToR with the new ASN", 10*time.Second, func() bool {
		p, ok := torNew.path(t, "10.0.1.0/24")
		return ok && slices.Equal(p.asPath, []uint32{65077})
	})
	eventually(t, "gone from the old ToR", 10*time.Second, func() bool { return len(torOld.rib(t)) == 0 })
	ps, err := node.Peers(ctx)
	if err != nil || len(ps) != 1 || ps[0].Address != torNew.addr {
		t.Fatalf("peers after the move: %+v %v", ps, err)
	}
	// The gRPC API is back on the same address.
	conn, err := net.DialTimeout("tcp", node.cfg.APIAddress, time.Second)
	if err != nil {
		t.Fatalf("gRPC API after the restart: %v", err)
	}
	conn.Close()

	// A bad identity is refused and changes nothing.
	if err := node.SetIdentity(ctx, 0, rid, nil); err == nil {
		t.Fatal("ASN 0 accepted")
	}
	if asn, _ := node.LocalIdentity(); asn != 65077 {
		t.Fatalf("identity changed by a refused call: %d", asn)
	}
}

// TestBFD: BFD settings reach GoBGP in its units (microseconds); BFD runs
// only while a session is established (a peer that never comes up has
// none); the state shows per peer ("" without BFD, "down" while the ToR
// runs none, which GoBGP does not hold the BGP session on); switching BFD
// on and off is applied without resetting the BGP session.
func TestBFD(t *testing.T) {
	bfd := BFDConfig{Enabled: true, MinTx: 300 * time.Millisecond, MinRx: 250 * time.Millisecond, Multiplier: 3}
	tor := newToR(t, "127.0.0.10", 65100, "127.0.0.1", 65001, "0.0.0.0/0")
	pc := tor.peerConfig(65100)
	pc.BFD = bfd
	got := toAPIPeer(pc).Bfd
	if got == nil || !got.Enabled || got.DesiredMinimumTxInterval != 300000 || got.RequiredMinimumReceive != 250000 ||
		got.DetectionMultiplier != 3 || got.Port != 0 {
		t.Fatalf("api BFD config: %v", got)
	}
	plain := withoutBFD(pc)
	if toAPIPeer(plain).Bfd != nil {
		t.Fatal("BFD config sent for a peer without BFD")
	}
	dead := pc // nobody listens there: never established
	dead.Address, dead.Port = netip.MustParseAddr("127.0.0.11"), freePort(t, "127.0.0.11")
	node := startNode(t, []PeerConfig{pc, dead}, "10.0.1.0/24")
	established(t, node, 1)
	ctx := context.Background()
	peer := func(a netip.Addr) health.Peer {
		ps, err := node.Peers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.Address == a {
				return p
			}
		}
		t.Fatalf("no peer %s in %+v", a, ps)
		return health.Peer{}
	}
	eventually(t, "BFD state down (the ToR runs no BFD)", 10*time.Second, func() bool { return peer(pc.Address).BFD == health.BFDDown })
	if p := peer(dead.Address); p.BFD != health.BFDOff {
		t.Errorf("BFD runs for a session that never came up: %+v", p)
	}
	time.Sleep(time.Second)
	if err := node.SetPeers(ctx, []PeerConfig{plain, dead}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "BFD state gone", 5*time.Second, func() bool { return peer(pc.Address).BFD == health.BFDOff })
	if p := peer(pc.Address); p.State != health.SessionEstablished || p.Uptime < time.Second {
		t.Fatalf("switching BFD off reset the session: %+v", p)
	}
	if err := node.SetPeers(ctx, []PeerConfig{pc, dead}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "BFD state down again", 5*time.Second, func() bool { return peer(pc.Address).BFD == health.BFDDown })
	if p := peer(pc.Address); p.State != health.SessionEstablished || p.Uptime < time.Second {
		t.Fatalf("switching BFD on reset the session: %+v", p)
	}
	if _, err := New(Config{RouterID: netip.MustParseAddr("192.0.2.1"), ASN: 65001,
		Peers: []PeerConfig{{Address: tor.addr, ASN: 65100, HoldTime: 9 * time.Second, KeepaliveInterval: 3 * time.Second,
			BFD: BFDConfig{Enabled: true}}}}, testLogger(t)); err == nil {
		t.Error("New accepted BFD without intervals")
	}
}
