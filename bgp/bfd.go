package bgp

import (
	"context"
	"net/netip"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// bfdStartDelay is how long a session must have been Established before
// its BFD starts. A ToR that registers the BFD session for a BGP neighbour
// before the session is up, without the local address and interface, and
// re-registers it with them once the session is established (FRR 8.4
// does) replaces its BFD session at that moment; GoBGP's BFD, bound to the
// old session's discriminator, then declares the peer down and resets the
// fresh BGP session (seen in the lab: every session flapped once at
// start-up and took ~35 s to settle). Starting BFD a little later avoids
// that; the hold timer covers these first seconds.
const bfdStartDelay = 2 * time.Second

// idleHoldAfterReset is how long a session stays Idle after we reset it
// (GoBGP's default is 30 s): 5 s, as after any other session loss in
// GoBGP. BFD resets the session when it declares the peer down, and the
// default route through that peer comes back only when the session does.
const idleHoldAfterReset = 5 * time.Second

// withoutBFD is p with BFD off: peers are added that way and get BFD from
// syncBFD once established.
func withoutBFD(p PeerConfig) PeerConfig {
	p.BFD = BFDConfig{}
	return p
}

// bfdSessions is the BFD configuration running in GoBGP per peer. Its
// lock serialises syncBFD and is taken before the speaker's.
type bfdSessions struct {
	mu      sync.Mutex
	applied map[netip.Addr]BFDConfig // zero: off
}

func (b *bfdSessions) reset() {
	b.mu.Lock()
	b.applied = map[netip.Addr]BFDConfig{}
	b.mu.Unlock()
}

// forget drops addr's entry: its peer was (re-)created without BFD.
func (b *bfdSessions) forget(addr netip.Addr) {
	b.mu.Lock()
	delete(b.applied, addr)
	b.mu.Unlock()
}

// syncBFD runs BFD for addr's session exactly while the session is
// Established and its configuration asks for BFD; GoBGP swaps the BFD
// session under the running BGP session (UpdatePeer). Stopping BFD when the
// session goes down keeps a restarted ToR's re-registration from flapping
// the next session too. Level-triggered: it compares what should run with
// what runs, so a late or repeated call is harmless.
func (s *Speaker) syncBFD(ctx context.Context, addr netip.Addr) {
	s.bfd.mu.Lock()
	defer s.bfd.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	srv, st := s.life.srv, s.sessions.state[addr]
	p, found := findPeer(s.cfg.Peers, addr)
	s.mu.Unlock()
	if srv == nil || !found {
		return
	}
	want := BFDConfig{}
	if st == bgp.BGP_FSM_ESTABLISHED {
		want = p.BFD
	}
	if want == s.bfd.applied[addr] {
		return
	}
	p.BFD = want
	if _, err := srv.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: toAPIPeer(p)}); err != nil {
		s.log.Error("switch bfd", "peer", addr, "bfd", want.Enabled, "err", err)
		return
	}
	s.bfd.applied[addr] = want
	if want.Enabled {
		s.log.Info("bfd started", "peer", addr, "min_tx", want.MinTx, "min_rx", want.MinRx, "multiplier", want.Multiplier)
	} else {
		s.log.Debug("bfd stopped", "peer", addr)
	}
}
