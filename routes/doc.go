// Package routes owns podrouter's default route(s) in the kernel.
//
// It is the only package that talks rtnetlink about routes. An [Installer]
// takes the whole desired state — the BGP next hops offering a default for
// one address family — and makes the kernel hold exactly one default route
// owned by podrouter: a plain gateway route for one usable next hop, an
// RTA_MULTIPATH (ECMP) route for several, none for zero. podrouter's routes
// carry their own rtnetlink protocol number ([Config.Protocol]); a default
// route without it is "foreign" and is never replaced or deleted.
//
// A next hop is usable when the kernel would reach it without another
// gateway (it falls in a connected route of the routing table) and its link
// is administratively and operationally up. Unusable next hops are left out
// and reported in [Result.Skipped].
//
// [Installer.Run] watches links and routes and kicks the consumer (the
// agent's reconcile loop) on anything that may change the answer: a link
// going up or down, a connected route appearing or vanishing, a default
// route being added or deleted behind our back (drift). Because the kernel
// reports a carrier loss through linkwatch, which may hold a non-urgent
// event back for up to a second, Run also reads the carrier of the few
// links holding our next hops every 20 ms.
//
// Only net/netip types cross the package boundary; netlink types stay here.
// Family, NextHop and Result are the agent's vocabulary for routes too.
//
// Owns: podrouter's default routes and pod CIDR blackholes in the kernel,
// bgp.autoPeers discovery from the node's addresses and routes, and the
// defaults of its Config (protocol 201, main table, metric 20).
//
// Imports (podrouter): none.
package routes
