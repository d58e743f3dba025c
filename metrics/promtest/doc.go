// Package promtest runs a real Prometheus server (Debian's
// /usr/bin/prometheus) for tests: it scrapes the given targets every
// second from a temporary config and storage directory, answers queries
// through its HTTP API, and is killed and cleaned up by Stop.
//
// Lab nodes live in network namespaces, and a scrape target inside a node
// namespace cannot be reached from the root namespace. Either run
// Prometheus inside a namespace that routes to every node (Options.NetNS:
// it is then started under `ip netns exec`, and queries are dialled from
// inside that namespace), or make the nodes' metrics listen on addresses
// routed from where Prometheus runs (which needs the metrics listener's
// non-loopback opt-in).
//
// Owns: a test harness only (never linked into podrouter).
//
// Imports (podrouter): none.
package promtest
