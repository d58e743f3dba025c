// Package metrics owns podrouter's operator surface over HTTP: the
// Prometheus /metrics endpoint and the /healthz and /readyz probes.
//
// Live state (BGP sessions, route installer counters, datapath counters and
// conntrack use) is read at scrape time through narrow source interfaces
// defined here; the daemon adapts the real subsystems to them. Nothing is
// registered globally: every Server has its own registry.
//
// Metric names follow podrouter_<subsystem>_<name>_<unit>; counters end in
// _total. Series of a peer that is no longer configured disappear with it,
// because nothing is cached between scrapes.
package metrics
