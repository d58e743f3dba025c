package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/podrouter/podrouter/health"
)

// advertising is what the speaker originates.
type advertising struct {
	desired    []netip.Prefix // what the agent wants advertised
	advertised []netip.Prefix // what is in the RIB now
	policyFor  []netip.Prefix // pod CIDRs the export policy was built for
	depref     bool           // what is in the RIB carries the drain's deprefer attributes
}

func (s *Speaker) desired() []netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.adv.desired)
}

func (s *Speaker) applyPolicies(ctx context.Context, pods []netip.Prefix) error {
	srv := s.server()
	if srv == nil {
		return ErrNotRunning
	}
	if err := srv.SetPolicies(ctx, buildPolicies(pods)); err != nil {
		return fmt.Errorf("set bgp policies: %w", err)
	}
	for _, a := range assignments() {
		if err := srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: a}); err != nil {
			return fmt.Errorf("assign bgp policy %s: %w", a.Policies[0].Name, err)
		}
	}
	s.mu.Lock()
	s.adv.policyFor = slices.Clone(pods)
	s.mu.Unlock()
	return nil
}

// SetAdvertisements makes the set of locally originated prefixes exactly
// prefixes (the node's pod CIDRs). Idempotent. Before Start it only records
// the wish; while drained it records it and advertises what the drain
// allows (depreferred paths, or nothing once withdrawn).
func (s *Speaker) SetAdvertisements(ctx context.Context, prefixes []netip.Prefix) error {
	s.mu.Lock()
	s.adv.desired = slices.Clone(prefixes)
	srv, have, policyFor, advDepref := s.life.srv, slices.Clone(s.adv.advertised), s.adv.policyFor, s.adv.depref
	state, d, asn := s.drain.state, s.cfg.Drain, s.cfg.ASN
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	want, depref := prefixes, state == health.DrainDepreferred
	if state == health.DrainWithdrawn {
		want = nil
	}
	if samePrefixes(want, have) && depref == advDepref {
		return nil
	}
	var add, del []netip.Prefix
	for _, p := range want {
		// A change of attributes re-advertises (an implicit replace).
		if !slices.Contains(have, p) || depref != advDepref {
			add = append(add, p)
		}
	}
	for _, p := range have {
		if !slices.Contains(want, p) {
			del = append(del, p)
		}
	}
	// Export policy first covers old and new, so that nothing is dropped
	// between adding the new and withdrawing the old.
	union := slices.Clone(have)
	for _, p := range add {
		if !slices.Contains(union, p) {
			union = append(union, p)
		}
	}
	if !samePrefixes(union, policyFor) {
		if err := s.applyPolicies(ctx, union); err != nil {
			return err
		}
	}
	var errs []error
	var extra []bgp.PathAttributeInterface
	if depref {
		extra = deprefAttrs(d, asn)
	}
	addFailed := false
	for _, p := range add {
		path, err := localPath(p, false, extra...)
		if err == nil {
			_, err = srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("advertise %s: %w", p, err))
			addFailed = true
			continue
		}
		if !slices.Contains(have, p) {
			have = append(have, p)
		}
		if depref {
			s.log.Info("prefix advertised depreferred (draining)", "prefix", p)
		} else {
			s.log.Info("prefix advertised", "prefix", p)
		}
	}
	for _, p := range del {
		path, err := localPath(p, true)
		if err == nil {
			err = srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{path}})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("withdraw %s: %w", p, err))
			continue
		}
		have = slices.DeleteFunc(have, func(q netip.Prefix) bool { return q == p })
		s.log.Info("prefix withdrawn", "prefix", p)
	}
	s.mu.Lock()
	s.adv.advertised = have
	if !addFailed {
		s.adv.depref = depref
	}
	s.mu.Unlock()
	if !samePrefixes(have, union) {
		if err := s.applyPolicies(ctx, have); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Advertised returns the prefixes currently originated.
func (s *Speaker) Advertised() []netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.adv.advertised)
}

// deprefAttrs are the path attributes of a depreferred (draining)
// advertisement. GoBGP prepends the local ASN once more on export.
func deprefAttrs(d DrainConfig, asn uint32) []bgp.PathAttributeInterface {
	var attrs []bgp.PathAttributeInterface
	if d.ASPathPrepend > 0 {
		path := make([]uint32, d.ASPathPrepend)
		for i := range path {
			path[i] = asn
		}
		attrs = append(attrs, bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{
			bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, path),
		}))
	}
	if d.MED > 0 {
		attrs = append(attrs, bgp.NewPathAttributeMultiExitDisc(d.MED))
	}
	if d.GracefulShutdown {
		attrs = append(attrs, bgp.NewPathAttributeCommunities([]uint32{CommunityGracefulShutdown}))
	}
	return attrs
}

func localPath(p netip.Prefix, withdraw bool, extra ...bgp.PathAttributeInterface) (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(p)
	if err != nil {
		return nil, err
	}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	attrs = append(attrs, extra...)
	fam := bgp.RF_IPv4_UC
	if p.Addr().Is4() {
		nh, err := bgp.NewPathAttributeNextHop(netip.IPv4Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, nh)
	} else {
		fam = bgp.RF_IPv6_UC
		mp, err := bgp.NewPathAttributeMpReachNLRI(fam, []bgp.PathNLRI{{NLRI: nlri}}, netip.IPv6Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, mp)
	}
	return &apiutil.Path{Family: fam, Nlri: nlri, Attrs: attrs, Withdrawal: withdraw, Age: time.Now().Unix()}, nil
}
