// Package bgp owns podrouter's embedded BGP speaker. It is the only package
// that imports GoBGP; GoBGP's types never leave it (callers see net/netip).
//
// Policy is "downward default": the global import policy accepts exactly
// 0.0.0.0/0 and ::/0 from peers (plus our own locally originated pod CIDRs,
// which GoBGP also runs through the global import policy) and rejects the
// rest; the global export policy sends only locally originated pod CIDRs, so
// the node can never become transit for routes it learned.
//
// The speaker is split by concern: its lifecycle (speaker.go: Start,
// Close, the server), configuration (config.go), advertisements and the
// export policy (advertise.go, policy.go), the drain state machine
// (drain.go: the one place a drain lives, whichever of cordon, `podrouter
// drain` or a drain-mode shutdown started it), sessions and their status
// (status.go), the peer set and identity changes (peers.go), BFD (bfd.go:
// GoBGP's single-hop BFD, switched on per session only while it is
// established), and the conversions to and from GoBGP's types
// (convert.go).
//
// Owns: the embedded GoBGP server, its policies, sessions and
// advertisements. Reports sessions as health.Peer.
//
// Imports (podrouter): health.
package bgp
