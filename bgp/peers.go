package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	api "github.com/osrg/gobgp/v4/api"
)

// SetPeers makes the configured neighbours exactly peers, live: new ones
// are added, removed ones are deleted (their session gets a Cease), and
// changed ones (timers, password, ASN, …) are re-created, so a rotated
// TCP-MD5 password re-keys that session; a change of BFD settings alone is
// applied without resetting the BGP session. Unchanged peers are not touched.
// Keeps going after one failure and reports them all; what was applied is
// what Peers shows.
func (s *Speaker) SetPeers(ctx context.Context, peers []PeerConfig) error {
	srv := s.server()
	if srv == nil {
		return ErrNotRunning
	}
	s.mu.Lock()
	have := slices.Clone(s.cfg.Peers)
	s.mu.Unlock()
	var errs []error
	applied := slices.Clone(have)
	drop := func(a netip.Addr) {
		applied = slices.DeleteFunc(applied, func(p PeerConfig) bool { return p.Address == a })
	}
	// Add and change first, delete last: the node is never left with fewer
	// sessions than needed while it moves to the new set.
	for _, p := range peers {
		old, ok := findPeer(have, p.Address)
		switch {
		case ok && old == p:
			continue
		case ok && sameButBFD(old, p):
			// syncBFD below swaps the BFD session under the running BGP
			// session.
			drop(p.Address)
			applied = append(applied, p)
			s.log.Info("peer BFD settings changed", "peer", p.Address, "bfd", p.BFD.Enabled)
			continue
		case ok:
			if err := srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: p.Address.String()}); err != nil {
				errs = append(errs, fmt.Errorf("re-create peer %s: delete: %w", p.Address, err))
				continue
			}
			drop(p.Address)
			s.log.Info("peer re-created with new settings", "peer", p.Address, "peer_asn", p.ASN,
				"password_changed", old.Password != p.Password)
		default:
			s.log.Info("peer added", "peer", p.Address, "peer_asn", p.ASN)
		}
		// BFD starts once the session is established (syncBFD).
		if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: toAPIPeer(withoutBFD(p))}); err != nil {
			errs = append(errs, fmt.Errorf("add peer %s: %w", p.Address, err))
			continue
		}
		s.bfd.forget(p.Address)
		applied = append(applied, p)
	}
	for _, old := range have {
		if _, keep := findPeer(peers, old.Address); keep {
			continue
		}
		if err := srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: old.Address.String()}); err != nil {
			errs = append(errs, fmt.Errorf("delete peer %s: %w", old.Address, err))
			continue
		}
		drop(old.Address)
		s.bfd.forget(old.Address)
		s.log.Info("peer removed", "peer", old.Address)
	}
	s.mu.Lock()
	s.cfg.Peers = applied
	port := s.cfg.ListenPort
	s.mu.Unlock()
	if err := s.guard(port, applied); err != nil {
		errs = append(errs, err)
	}
	for _, p := range applied {
		s.syncBFD(ctx, p.Address)
	}
	return errors.Join(errs...)
}

// sameButBFD reports whether a and b differ in their BFD settings only.
func sameButBFD(a, b PeerConfig) bool {
	a.BFD = b.BFD
	return a == b
}

// SetIdentity changes the local ASN and router ID and makes the neighbours
// exactly peers. GoBGP cannot change its global config live, so the BGP
// server is restarted: every session gets a Cease and comes back with the
// new identity (as it would on a router), the gRPC API is re-created, and
// the pod CIDRs are re-advertised in their drain state. The caller keeps
// the kernel's default route meanwhile (agent.Hold). When the new identity
// cannot start, the old one is restored and the error returned.
func (s *Speaker) SetIdentity(ctx context.Context, asn uint32, routerID netip.Addr, peers []PeerConfig) error {
	s.mu.Lock()
	runCtx, k, running := s.life.ctx, s.life.kicker, s.life.srv != nil
	old := s.cfg
	s.mu.Unlock()
	next := old
	next.ASN, next.RouterID, next.Peers = asn, routerID, slices.Clone(peers)
	if err := next.validate(); err != nil {
		return fmt.Errorf("new identity: %w", err)
	}
	if !running {
		return ErrNotRunning
	}
	s.log.Warn("local identity changed: restarting the BGP server, every session resets",
		"asn", asn, "router_id", routerID, "old_asn", old.ASN, "old_router_id", old.RouterID)
	s.Close()
	s.mu.Lock()
	s.cfg = next
	s.adv.advertised, s.adv.policyFor, s.adv.depref = nil, nil, false
	s.sessions.reset() // the old server's sessions are gone
	s.mu.Unlock()
	err := s.start(runCtx, k)
	if err == nil {
		return nil
	}
	s.log.Error("restart with the new identity failed; restoring the old one", "err", err)
	s.mu.Lock()
	s.cfg = old
	s.adv.advertised, s.adv.policyFor, s.adv.depref = nil, nil, false
	s.mu.Unlock()
	if rerr := s.start(runCtx, k); rerr != nil {
		return errors.Join(err, fmt.Errorf("restore the old identity: %w", rerr))
	}
	return err
}
