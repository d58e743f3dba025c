package bgp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/podrouter/podrouter/bgp/bgptest"
)

// hostileSession is one case's peer: a listener at its own loopback
// address that the speaker connects to, and the session on it.
type hostileSession struct {
	addr netip.Addr
	port uint16
	ln   net.Listener
}

func newHostile(t *testing.T, i int) *hostileSession {
	t.Helper()
	addr := netip.AddrFrom4([4]byte{127, 0, 1, byte(10 + i)})
	ln, err := net.Listen("tcp4", net.JoinHostPort(addr.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &hostileSession{addr: addr, port: uint16(ln.Addr().(*net.TCPAddr).Port), ln: ln}
}

func (h *hostileSession) accept(t *testing.T, cfg bgptest.Config) (*bgptest.Peer, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if tl, ok := h.ln.(*net.TCPListener); ok {
		_ = tl.SetDeadline(time.Now().Add(20 * time.Second))
	}
	c, err := h.ln.Accept()
	if err != nil {
		return nil, fmt.Errorf("speaker did not connect: %w", err)
	}
	p, err := bgptest.Handshake(ctx, c, cfg)
	if err != nil {
		c.Close()
		return nil, err
	}
	t.Cleanup(func() { p.Close() })
	return p, nil
}

// peerDefaults lists the next hops of the default routes in the Loc-RIB
// learned from peer.
func peerDefaults(s *Speaker, peer netip.Addr) []netip.Addr {
	srv := s.server()
	if srv == nil {
		return nil
	}
	var out []netip.Addr
	_ = srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: gobgp.RF_IPv4_UC,
		Prefixes: []*apiutil.LookupPrefix{{Prefix: "0.0.0.0/0", LookupOption: apiutil.LOOKUP_EXACT}}},
		func(_ gobgp.NLRI, paths []*apiutil.Path) {
			for _, p := range paths {
				if p.PeerAddress.Unmap() == peer && !p.Withdrawal {
					out = append(out, nextHop(p))
				}
			}
		})
	return out
}

// TestMalformedCorpus replays the committed malformed-message corpus
// (bgp/bgptest) against a running Speaker, one hostile peer per case on
// its own loopback address, all in parallel. Before each case the peer
// announces a valid default through its own address; then it sends the
// case and a ROUTE-REFRESH as a barrier. Checked: treat-as-withdraw and
// attribute-discard cases keep the session (and withdraw the default, or
// accept it via NextHopDiscard), session-reset cases get the NOTIFICATION
// the RFC names, a default through NextHopBad never appears in the
// Loc-RIB (sampled every 2 ms), and the speaker survives everything.
func TestMalformedCorpus(t *testing.T) {
	var cases []bgptest.Case
	for _, c := range bgptest.Corpus() {
		if c.Kind == bgptest.KindUpdate || c.Kind == bgptest.KindOpen {
			cases = append(cases, c)
		}
	}
	hs := make([]*hostileSession, len(cases))
	var peers []PeerConfig
	for i := range cases {
		hs[i] = newHostile(t, i)
		peers = append(peers, PeerConfig{
			Address: hs[i].addr, Port: hs[i].port, ASN: bgptest.PeerASN, LocalAddress: netip.MustParseAddr("127.0.0.1"),
			HoldTime: 9 * time.Second, KeepaliveInterval: 3 * time.Second, ConnectRetry: time.Second,
		})
	}
	s := startNode(t, peers, "10.0.1.0/24")

	// The Loc-RIB must never hold a default through NextHopBad.
	stop := make(chan struct{})
	var seenBad []string
	var mu sync.Mutex
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			v4, _, err := s.Defaults(context.Background())
			if err != nil {
				continue
			}
			for _, nh := range v4 {
				if nh == bgptest.NextHopBad {
					mu.Lock()
					seenBad = append(seenBad, time.Now().Format("15:04:05.000"))
					mu.Unlock()
				}
			}
		}
	}()
	defer close(stop)

	cfg := bgptest.Config{ASN: bgptest.PeerASN, RouterID: netip.MustParseAddr("192.0.2.100")}
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := hs[i]
			if c.Kind == bgptest.KindOpen {
				ocfg := cfg
				ocfg.Open = c.Msg
				p, err := h.accept(t, ocfg)
				if err != nil {
					t.Errorf("%s: %v", c.Name, err)
					return
				}
				_, code, sub := c.Expect()
				n, err := p.WaitClosed(10 * time.Second)
				if err != nil || n.Code != code || n.Subcode != sub {
					t.Errorf("%s: speaker answered %v (%v), want NOTIFICATION %d/%d", c.Name, n, err, code, sub)
				}
				// The speaker must still take a proper session from this address.
				if _, err := h.accept(t, cfg); err != nil {
					t.Errorf("%s: no session after the bad OPEN: %v", c.Name, err)
				}
				return
			}
			p, err := h.accept(t, cfg)
			if err != nil {
				t.Errorf("%s: %v", c.Name, err)
				return
			}
			if err := p.Send(bgptest.Announce(h.addr)); err != nil {
				t.Errorf("%s: %v", c.Name, err)
				return
			}
			deadline := time.Now().Add(10 * time.Second)
			for len(peerDefaults(s, h.addr)) == 0 {
				if time.Now().After(deadline) {
					t.Errorf("%s: the valid default never reached the Loc-RIB", c.Name)
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := p.Send(c.Msg); err != nil {
				t.Errorf("%s: send: %v", c.Name, err)
				return
			}
			handling, code, sub := c.Expect()
			if c.Deviation != "" {
				t.Logf("%s: RFC %s, GoBGP %s: %s", c.Name, c.Handling, handling, c.Deviation)
			}
			switch handling {
			case bgptest.SessionReset:
				n, err := p.WaitClosed(10 * time.Second)
				if err != nil || n.Code != code || n.Subcode != sub {
					t.Errorf("%s (%s): speaker answered %v (%v), want NOTIFICATION %d/%d", c.Name, c.Ref, n, err, code, sub)
				}
			default:
				if err := p.Barrier(10 * time.Second); err != nil {
					n, _ := p.Notification()
					t.Errorf("%s (%s): session lost (%v, %v), want %s", c.Name, c.Ref, err, n, handling)
					return
				}
				got := peerDefaults(s, h.addr)
				want := []netip.Addr{}
				switch handling {
				case bgptest.AttributeDiscard:
					want = []netip.Addr{bgptest.NextHopDiscard}
				case bgptest.Ignored:
					want = []netip.Addr{h.addr}
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s (%s): default from the peer %v after the case, want %v (%s)", c.Name, c.Ref, got, want, handling)
				}
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(seenBad) > 0 {
		t.Errorf("a default through %s reached the Loc-RIB at %v", bgptest.NextHopBad, seenBad)
	}
	if _, err := s.Peers(context.Background()); err != nil {
		t.Errorf("speaker not answering after the corpus: %v", err)
	}
}
