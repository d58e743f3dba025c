package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/podrouter/podrouter/bgp/bgptest"
)

// fuzzRig is one Speaker (the real one: GoBGP's FSM decodes, podrouter's
// import policy filters, Defaults decides) listening on loopback, with a
// pool of hostile peers that connect to it. A session the speaker resets
// is redialled in the background (the speaker holds a reset peer idle for
// idleHoldAfterReset) while the fuzzer uses the others.
type fuzzRig struct {
	s     *Speaker
	port  uint16
	ready chan *fuzzSession
}

type fuzzSession struct {
	addr netip.Addr
	p    *bgptest.Peer
}

const fuzzPeers = 192

var (
	rigOnce sync.Once
	rig     *fuzzRig
	rigErr  error
)

// getRig builds the rig once per process (each fuzz worker is a process).
func getRig(t testing.TB) *fuzzRig {
	rigOnce.Do(func() { rig, rigErr = newFuzzRig() })
	if rigErr != nil {
		t.Fatal(rigErr)
	}
	return rig
}

func newFuzzRig() (*fuzzRig, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	var peers []PeerConfig
	for i := range fuzzPeers {
		peers = append(peers, PeerConfig{
			Address: netip.AddrFrom4([4]byte{127, 0, 2, byte(10 + i)}), Port: 1, ASN: bgptest.PeerASN,
			HoldTime: 90 * time.Second, KeepaliveInterval: 30 * time.Second, ConnectRetry: 60 * time.Second,
		})
	}
	s, err := New(Config{
		RouterID: netip.MustParseAddr("192.0.2.1"), ASN: 65001, ListenPort: int32(port),
		ListenAddresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, LogLevel: 12, // silent
	}, testLoggerQuiet())
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if err := s.SetAdvertisements(ctx, []netip.Prefix{netip.MustParsePrefix("10.0.1.0/24")}); err != nil {
		return nil, err
	}
	if err := s.Start(ctx, &countKicker{ch: make(chan struct{}, 1)}); err != nil {
		return nil, err
	}
	// The peers are added here rather than by Start so that a reset one
	// is idle for 1 s instead of idleHoldAfterReset: most fuzz inputs
	// reset their session, and the reconnects set the pace.
	for _, p := range peers {
		ap := toAPIPeer(p)
		ap.Timers.Config.IdleHoldTimeAfterReset = 1
		if err := s.server().AddPeer(ctx, &api.AddPeerRequest{Peer: ap}); err != nil {
			return nil, err
		}
	}
	if _, err := guardListeners(int32(port), peers); err != nil {
		return nil, err
	}
	r := &fuzzRig{s: s, port: port, ready: make(chan *fuzzSession, fuzzPeers)}
	for _, p := range peers {
		go r.dial(p.Address)
	}
	return r, nil
}

// dial connects from addr until a session is up, then hands it out.
func (r *fuzzRig) dial(addr netip.Addr) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: addr.AsSlice()}, Timeout: time.Second}
	for {
		c, err := d.Dial("tcp4", "127.0.0.1:"+strconv.Itoa(int(r.port)))
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			p, herr := bgptest.Handshake(ctx, c, bgptest.Config{ASN: bgptest.PeerASN, RouterID: netip.MustParseAddr("192.0.2.100"), HoldTime: 90 * time.Second})
			cancel()
			if herr == nil {
				r.ready <- &fuzzSession{addr: addr, p: p}
				return
			}
			if os.Getenv("FUZZ_DEBUG") != "" {
				fmt.Fprintln(os.Stderr, addr, herr)
			}
			c.Close()
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// locRIB lists every path in the Loc-RIB (IPv4 and IPv6 unicast).
func (r *fuzzRig) locRIB() ([]string, error) {
	var out []string
	for _, fam := range []gobgp.Family{gobgp.RF_IPv4_UC, gobgp.RF_IPv6_UC} {
		err := r.s.server().ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: fam},
			func(n gobgp.NLRI, paths []*apiutil.Path) {
				for _, p := range paths {
					if !p.Withdrawal {
						out = append(out, fmt.Sprintf("%s from %v", n, p.PeerAddress))
					}
				}
			})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// frameUpdate puts body behind a BGP header as an UPDATE, cut to the
// maximum message size.
func frameUpdate(body []byte) []byte {
	body = body[:min(len(body), gobgp.BGP_MAX_MESSAGE_LENGTH-gobgp.BGP_HEADER_LENGTH)]
	return bgptest.Message(gobgp.BGP_MSG_UPDATE, body)
}

// FuzzLearnedPaths sends each input as the body of an UPDATE from a peer
// on an Established session to a running Speaker, then a ROUTE-REFRESH
// as a barrier. Whatever the input, the speaker must answer the barrier
// or close the session within 5 s (no hang, no crash), and its Loc-RIB may
// hold nothing but 0.0.0.0/0 and ::/0 learned from a peer and the node's
// own pod CIDR: the import policy lets nothing else through, whatever the
// decoder made of the bytes. Seeds: the malformed-message corpus and two
// valid UPDATEs.
func FuzzLearnedPaths(f *testing.F) {
	for _, c := range bgptest.Corpus() {
		if c.Kind == bgptest.KindUpdate && len(c.Msg) >= gobgp.BGP_HEADER_LENGTH {
			f.Add(c.Msg[gobgp.BGP_HEADER_LENGTH:])
		}
	}
	f.Add(bgptest.Announce(netip.MustParseAddr("192.0.2.9"))[gobgp.BGP_HEADER_LENGTH:])
	f.Add(bgptest.Withdraw()[gobgp.BGP_HEADER_LENGTH:])
	f.Fuzz(fuzzBody)
}

func fuzzBody(t *testing.T, body []byte) {
	{
		r := getRig(t)
		var sess *fuzzSession
		select {
		case sess = <-r.ready:
		case <-time.After(30 * time.Second):
			ps, _ := r.s.Peers(context.Background())
			states := map[string]int{}
			for _, p := range ps {
				states[fmt.Sprintf("%v/%v", p.State, p.AdminState)]++
			}
			t.Fatalf("no session to the speaker within 30s (peers: %v)", states)
		}
		if err := sess.p.Send(frameUpdate(body)); err == nil {
			err = sess.p.Barrier(5 * time.Second)
			if err != nil && err != bgptest.ErrClosed {
				t.Fatalf("speaker neither answered nor closed within 5s after % x: %v", body, err)
			}
		}
		// A speaker whose main loop hangs never answers ListPath: bound it.
		type ribResult struct {
			rib []string
			err error
		}
		got := make(chan ribResult, 1)
		go func() {
			rib, err := r.locRIB()
			got <- ribResult{rib, err}
		}()
		var rib []string
		select {
		case res := <-got:
			if res.err != nil {
				t.Fatalf("speaker not answering: %v", res.err)
			}
			rib = res.rib
		case <-time.After(10 * time.Second):
			t.Fatalf("speaker's RIB did not answer within 10s after % x (hung)", body)
		}
		for _, e := range rib {
			switch {
			case e == "10.0.1.0/24 from invalid IP":
			case len(e) > 10 && (e[:10] == "0.0.0.0/0 " || e[:5] == "::/0 "):
			default:
				t.Fatalf("Loc-RIB holds %q after % x", e, body)
			}
		}
		if sess.p.Alive() {
			// Leave the peer's slate clean: withdraw whatever it announced.
			if sess.p.Send(bgptest.Withdraw()) == nil {
				r.ready <- sess
				return
			}
		}
		sess.p.Close()
		go r.dial(sess.addr)
	}
}

func testLoggerQuiet() *slog.Logger { return slog.New(slog.DiscardHandler) }
