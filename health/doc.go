// Package health is podrouter's one model of its own state: a Snapshot of
// the BGP sessions, the default routes, the eBPF fast path and the
// reconcile loop, built by the daemon from its parts and rendered by
// everything that reports it: /metrics and /readyz (package metrics), the
// PodrouterReady Node condition and Events (k8s), and `podrouter status`
// (api). Ready, Condition, Events and Warnings are pure functions of a
// snapshot, so each rendering follows from the same facts.
//
// Each state has one enum here (SessionState, AdminState, BFDState,
// GRState, DatapathState, DrainState), written as text where it is
// rendered (MarshalText, String): packages compare enums, never strings.
// The producers use them directly (bgp reports health.Peer).
//
// Owns: the snapshot, its enums and what follows from them (readiness
// checks, the Node condition and its reasons, the health Events, the
// warnings).
//
// Imports (podrouter): none.
package health
