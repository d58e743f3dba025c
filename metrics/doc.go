// Package metrics owns podrouter's operator surface over HTTP: the
// Prometheus /metrics endpoint and the /healthz and /readyz probes.
//
// Live state is read at scrape time: one health.Snapshot per scrape (BGP
// sessions, default routes, reconcile loop, fast path and its map usage)
// and the cumulative counters of the route installer (routes.Stats) and
// the fast path (datapath.Counter), through the narrow source interfaces
// in sources.go. /readyz renders the snapshot's Ready checks. Nothing is
// registered globally: every Server has its own registry.
//
// Metric names follow podrouter_<subsystem>_<name>_<unit>; counters end in
// _total. Series of a peer that is no longer configured disappear with it,
// because nothing is cached between scrapes.
//
// Owns: the Prometheus collectors and the HTTP listener.
//
// Imports (podrouter): datapath, health, routes (their types only).
package metrics
