// Package bgp owns podrouter's embedded BGP speaker. It is the only package
// that imports GoBGP; GoBGP's types never leave it (callers see net/netip).
//
// Policy is "downward default": the global import policy accepts exactly
// 0.0.0.0/0 and ::/0 from peers (plus our own locally originated pod CIDRs,
// which GoBGP also runs through the global import policy) and rejects the
// rest; the global export policy sends only locally originated pod CIDRs, so
// the node can never become transit for routes it learned.
//
// BFD (bfd.go) is GoBGP's single-hop BFD, switched on per session only
// while it is established.
package bgp
