// Package agent turns the node's state into desired state for the
// actuators (BGP speaker, kernel routes, datapath) in one reconcile loop.
// Event sources only kick the loop; each pass pulls fresh state and
// recomputes everything, and a periodic resync is the safety net.
//
// The node's state (NodeState: pod CIDRs, drained) is the only way pod
// CIDRs reach the actuators: each pass hands them to the speaker, the
// blackhole routes and the datapath, so CIDRs that change after start
// (Kubernetes assigns them to the Node) are followed live.
//
// Owns: NodeState, the reconcile loop, the startup hold, and the narrow
// interfaces it drives (Speaker, RouteInstaller, Datapath). It speaks the
// route installer's own types (routes.Family, NextHop, Result).
//
// Imports (podrouter): routes.
package agent
