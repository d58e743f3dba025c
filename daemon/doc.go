// Package daemon is the podrouter daemon: Run wires the parts from a
// validated config and runs them until the context ends, then shuts down.
//
//	config ─► Run ─┬─ k8s adapter (Kubernetes mode) ──► agent.NodeState, peering overrides, password
//	               ├─ peering (peering.go): explicit + discovered + the Node's peers ──► bgp.Speaker
//	               ├─ agent: NodeState ──► bgp (advertise, drain), routes (defaults, blackholes), fast path
//	               ├─ fast path supervisor (fastpath.go) ──► datapath, or the kernel path with the reason
//	               ├─ health snapshot (snapshot.go) ──► metrics, /readyz, Node condition, local API status
//	               └─ local API (localapi.go, package api) ──► status, drain, monitor
//
// The shutdown order (shutdown.go) depends on how the daemon ends: a
// graceful restart (SIGTERM by default) leaves sessions, routes and the
// fast path's pins for the next instance; a drain (shutdown.mode: drain, or
// `podrouter drain`) withdraws, closes the sessions with a NOTIFICATION,
// detaches the fast path and removes the routes. The local API's socket
// goes last either way.
//
// A new source of desired state (say, the cluster's service CIDRs for the
// datapath's pass list) is one goroutine in Run feeding the agent or an
// actuator; a new health condition is a field of health.Snapshot filled in
// snapshot.go.
//
// Owns: wiring, lifecycle, the peering controller, the fast-path
// supervisor, the Kubernetes sink, the local API server.
//
// Imports (podrouter): agent, api, bgp, config, datapath, health, k8s,
// metrics, routes.
package daemon
