package bgp

import (
	"net/netip"
	"slices"

	api "github.com/osrg/gobgp/v4/api"
)

// Names of podrouter's policy objects, visible with `gobgp policy`.
const (
	policyImport    = "podrouter-import"
	policyExport    = "podrouter-export"
	setDefaultV4    = "podrouter-default-v4"
	setDefaultV6    = "podrouter-default-v6"
	setPodCIDRsV4   = "podrouter-pod-cidrs-v4"
	setPodCIDRsV6   = "podrouter-pod-cidrs-v6"
	globalAssignKey = "global" // GoBGP only allows global policies for ordinary peers
)

var (
	defaultV4 = netip.MustParsePrefix("0.0.0.0/0")
	defaultV6 = netip.MustParsePrefix("::/0")
)

// IsDefault reports whether p is exactly the IPv4 or IPv6 default route.
func IsDefault(p netip.Prefix) bool {
	return p.IsValid() && p.Bits() == 0 && p.Addr().IsUnspecified()
}

// buildPolicies renders the complete routing policy for the given pod CIDRs:
//
//	import: accept our local routes; reject what an external peer sent with
//	        an empty AS_PATH; accept exactly 0.0.0.0/0 and ::/0; reject the rest.
//	export: accept local routes that are one of our pod CIDRs; reject the rest.
//
// The statements are rebuilt whole whenever the pod CIDRs change, so an
// empty family never produces an empty prefix set (which GoBGP refuses).
func buildPolicies(podCIDRs []netip.Prefix) *api.SetPoliciesRequest {
	exact := func(p netip.Prefix) *api.Prefix {
		return &api.Prefix{IpPrefix: p.String(), MaskLengthMin: uint32(p.Bits()), MaskLengthMax: uint32(p.Bits())}
	}
	sets := []*api.DefinedSet{
		{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: setDefaultV4, Prefixes: []*api.Prefix{exact(defaultV4)}},
		{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: setDefaultV6, Prefixes: []*api.Prefix{exact(defaultV6)}},
	}
	accept := &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT}
	importStmts := []*api.Statement{
		{
			Name:       "accept-local",
			Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
			Actions:    accept,
		},
		{
			// An eBGP peer always prepends its own AS (RFC 4271 5.1.2), so
			// an empty AS_PATH from one is malformed: treat-as-withdraw
			// when the first-AS check is made (RFC 4271 6.3, RFC 7606
			// 7.2). GoBGP makes no such check for non-confederation peers
			// (the corpus case cve-2026-49838-empty-aspath).
			Name: "reject-empty-as-path-from-ebgp",
			Conditions: &api.Conditions{
				RouteType:    api.Conditions_ROUTE_TYPE_EXTERNAL,
				AsPathLength: &api.AsPathLength{Type: api.Comparison_COMPARISON_EQ, Length: 0},
			},
			Actions: &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT},
		},
		{
			Name:       "accept-default-v4",
			Conditions: &api.Conditions{PrefixSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: setDefaultV4}},
			Actions:    accept,
		},
		{
			Name:       "accept-default-v6",
			Conditions: &api.Conditions{PrefixSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: setDefaultV6}},
			Actions:    accept,
		},
	}
	var exportStmts []*api.Statement
	for _, fam := range []struct {
		set string
		v4  bool
	}{{setPodCIDRsV4, true}, {setPodCIDRsV6, false}} {
		var ps []*api.Prefix
		for _, p := range podCIDRs {
			if p.Addr().Is4() == fam.v4 {
				ps = append(ps, exact(p))
			}
		}
		if len(ps) == 0 {
			continue
		}
		sets = append(sets, &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: fam.set, Prefixes: ps})
		exportStmts = append(exportStmts, &api.Statement{
			Name: "export-" + fam.set,
			Conditions: &api.Conditions{
				RouteType: api.Conditions_ROUTE_TYPE_LOCAL,
				PrefixSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: fam.set},
			},
			Actions: accept,
		})
	}
	if len(exportStmts) == 0 {
		// No pod CIDRs: the export policy still exists (the assignment
		// names it) and rejects everything.
		exportStmts = []*api.Statement{{
			Name:    "reject-all",
			Actions: &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT},
		}}
	}
	policies := []*api.Policy{
		{Name: policyImport, Statements: importStmts},
		{Name: policyExport, Statements: exportStmts},
	}
	return &api.SetPoliciesRequest{DefinedSets: sets, Policies: policies}
}

// assignments binds the policies to GoBGP's global RIB, both directions
// defaulting to reject. SetPolicies keeps existing assignments and ignores
// the request's, so these are set on their own after it.
func assignments() []*api.PolicyAssignment {
	assign := func(dir api.PolicyDirection, name string) *api.PolicyAssignment {
		return &api.PolicyAssignment{
			Name:          globalAssignKey,
			Direction:     dir,
			Policies:      []*api.Policy{{Name: name}},
			DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT,
		}
	}
	return []*api.PolicyAssignment{
		assign(api.PolicyDirection_POLICY_DIRECTION_IMPORT, policyImport),
		assign(api.PolicyDirection_POLICY_DIRECTION_EXPORT, policyExport),
	}
}

// samePrefixes reports whether a and b hold the same prefixes in any order.
func samePrefixes(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	cmp := func(p, q netip.Prefix) int {
		if c := p.Addr().Compare(q.Addr()); c != 0 {
			return c
		}
		return p.Bits() - q.Bits()
	}
	slices.SortFunc(x, cmp)
	slices.SortFunc(y, cmp)
	return slices.Equal(x, y)
}
