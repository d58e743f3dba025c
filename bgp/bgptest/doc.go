// Package bgptest is test support for podrouter's BGP side: a hostile BGP
// peer that speaks just enough BGP to bring a session to Established and
// then sends whatever bytes a test gives it, and the committed corpus of
// malformed messages (one case per RFC 7606 rule and one reproducer per
// GoBGP CVE fixed in v4) that the in-process tests, the fuzz seeds and the
// resilience suite replay.
//
// Messages are built with GoBGP's own packet library
// (github.com/osrg/gobgp/v4/pkg/packet/bgp) where a valid encoding exists
// and edited byte by byte where the point is that none does. Nothing here
// imports podrouter's packages: the peer plays the ToR, not the node.
//
// Imports (podrouter): none.
package bgptest
