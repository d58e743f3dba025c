package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/podrouter/podrouter/health"
)

// sessions is the speaker's own bookkeeping of its sessions, from GoBGP's
// peer events.
type sessions struct {
	state      map[netip.Addr]bgp.FSMState
	pfxTrips   map[netip.Addr]uint64 // max-prefix trips so far
	lastReject map[netip.Addr]uint64 // rejected prefixes last logged
}

func (ss *sessions) reset() {
	ss.state = map[netip.Addr]bgp.FSMState{}
	if ss.pfxTrips == nil {
		ss.pfxTrips = map[netip.Addr]uint64{}
		ss.lastReject = map[netip.Addr]uint64{}
	}
}

func (s *Speaker) onPeer(ctx context.Context, ev *apiutil.WatchEventMessage_PeerEvent, k Kicker) {
	st := ev.Peer.State
	addr := st.NeighborAddress
	if !addr.IsValid() {
		addr = ev.Peer.Conf.NeighborAddress
	}
	s.mu.Lock()
	prev, known := s.sessions.state[addr]
	s.sessions.state[addr] = st.SessionState
	tripped := false
	if st.AdminState == api.PeerState_ADMIN_STATE_PFX_CT && prev == bgp.BGP_FSM_ESTABLISHED {
		s.sessions.pfxTrips[addr]++
		tripped = true
	}
	s.mu.Unlock()
	if ev.Type == apiutil.PEER_EVENT_STATE && (!known || prev != st.SessionState) {
		log := s.log.With("peer", addr, "peer_asn", st.PeerASN)
		switch {
		case st.SessionState == bgp.BGP_FSM_ESTABLISHED:
			log.Info("peer up", "router_id", st.RouterID)
			time.AfterFunc(bfdStartDelay, func() { s.syncBFD(ctx, addr) })
		case prev == bgp.BGP_FSM_ESTABLISHED:
			log.Warn("peer down", "state", fsmName(st.SessionState), "reason", disconnectReason(st.DisconnectReason), "message", st.DisconnectMessage)
			go s.syncBFD(ctx, addr) // never call GoBGP from its event callback
		default:
			log.Debug("peer state", "state", fsmName(st.SessionState))
		}
	}
	if tripped {
		s.maxPrefixBackoff(ctx, addr)
	}
	k.Kick()
}

// maxPrefixBackoff re-enables a peer that tripped its max-prefix limit after
// the configured back-off, so one burst never leaves a ToR down for good.
func (s *Speaker) maxPrefixBackoff(ctx context.Context, addr netip.Addr) {
	wait := time.Minute
	s.mu.Lock()
	if p, ok := findPeer(s.cfg.Peers, addr); ok && p.MaxPrefixRestart > 0 {
		wait = p.MaxPrefixRestart
	}
	s.mu.Unlock()
	s.log.Warn("peer exceeded max-prefix, session closed", "peer", addr, "retry_in", wait)
	time.AfterFunc(wait, func() {
		srv := s.server()
		if ctx.Err() != nil || srv == nil {
			return
		}
		if err := srv.EnablePeer(ctx, &api.EnablePeerRequest{Address: addr.String()}); err != nil {
			s.log.Error("re-enable peer after max-prefix back-off", "peer", addr, "err", err)
			return
		}
		s.log.Info("peer re-enabled after max-prefix back-off", "peer", addr)
	})
}

// summariseRejects logs, when it changes, how many prefixes each peer sent
// that the import policy rejected: one line, not one per prefix.
func (s *Speaker) summariseRejects(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		peers, err := s.Peers(ctx)
		if err != nil {
			continue
		}
		for _, p := range peers {
			rej := p.Received - min(p.Accepted, p.Received)
			s.mu.Lock()
			last := s.sessions.lastReject[p.Address]
			s.sessions.lastReject[p.Address] = rej
			s.mu.Unlock()
			if rej != last {
				s.log.Info("prefixes rejected by import policy", "peer", p.Address, "rejected", rej, "received", p.Received, "accepted", p.Accepted)
			}
		}
	}
}

// Peers lists every configured neighbour with its state and counters,
// sorted by address.
func (s *Speaker) Peers(ctx context.Context) ([]health.Peer, error) {
	srv := s.server()
	if srv == nil {
		return nil, ErrNotRunning
	}
	var out []health.Peer
	err := srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		out = append(out, toPeer(p))
	})
	if err != nil {
		return nil, err
	}
	// GoBGP's per-peer "accepted" ignores the global import policy; count
	// what actually made it into the Loc-RIB instead. The Loc-RIB holds
	// only defaults and our own prefixes, so this walk is short.
	accepted := map[netip.Addr]uint64{}
	for _, fam := range []bgp.Family{bgp.RF_IPv4_UC, bgp.RF_IPv6_UC} {
		err = srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: fam},
			func(_ bgp.NLRI, paths []*apiutil.Path) {
				for _, p := range paths {
					if p.PeerAddress.IsValid() && !p.Withdrawal {
						accepted[p.PeerAddress.Unmap()]++
					}
				}
			})
		if err != nil {
			return nil, fmt.Errorf("list loc-rib: %w", err)
		}
	}
	s.mu.Lock()
	for i := range out {
		out[i].MaxPrefixTrips = s.sessions.pfxTrips[out[i].Address]
		out[i].Accepted = accepted[out[i].Address]
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b health.Peer) int { return a.Address.Compare(b.Address) })
	return out, nil
}

// Defaults returns the next hops of every default route peers offer now
// (the multipath set, stale graceful-restart paths included), per family.
func (s *Speaker) Defaults(ctx context.Context) (v4, v6 []netip.Addr, err error) {
	srv := s.server()
	if srv == nil {
		return nil, nil, ErrNotRunning
	}
	list := func(fam bgp.Family, prefix netip.Prefix) ([]netip.Addr, error) {
		var out []netip.Addr
		err := srv.ListPath(apiutil.ListPathRequest{
			TableType: api.TableType_TABLE_TYPE_GLOBAL,
			Family:    fam,
			Prefixes:  []*apiutil.LookupPrefix{{Prefix: prefix.String(), LookupOption: apiutil.LOOKUP_EXACT}},
		}, func(_ bgp.NLRI, paths []*apiutil.Path) {
			for _, p := range paths {
				if p.Withdrawal || p.Filtered || p.IsNexthopInvalid || !p.PeerAddress.IsValid() {
					continue
				}
				if nh := nextHop(p); nh.IsValid() && !slices.Contains(out, nh) {
					out = append(out, nh)
				}
			}
		})
		slices.SortFunc(out, netip.Addr.Compare)
		return out, err
	}
	if v4, err = list(bgp.RF_IPv4_UC, defaultV4); err != nil {
		return nil, nil, fmt.Errorf("list ipv4 default: %w", err)
	}
	if v6, err = list(bgp.RF_IPv6_UC, defaultV6); err != nil {
		return nil, nil, fmt.Errorf("list ipv6 default: %w", err)
	}
	return v4, v6, nil
}

// LocalIdentity is the local ASN and router ID in force.
func (s *Speaker) LocalIdentity() (asn uint32, routerID netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.ASN, s.cfg.RouterID
}
