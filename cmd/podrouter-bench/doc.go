// Command podrouter-bench measures pod networking side by side in the
// netns lab (`make bench`, as root; a development tool, not in the shipped
// image): (a) node↔node, (b) pod↔pod on kernel routing, (c) pod↔pod on
// kernel routing with a legacy-CNI iptables/conntrack ruleset in both
// nodes, (d) pod↔pod on podrouter's eBPF fast path, and through a
// Kubernetes Service's ClusterIP (kube-proxy, iptables mode) to a pod on
// another node: (e) on the kernel path, (f) with the fast path.
//
// Three labs run at once: one without the fast path (4 nodes: a and b use
// nodes 1→2, c uses nodes 3→4 which carry the ruleset), one with it
// (2 nodes: d uses 1→2), and a Kubernetes lab (4 nodes: f uses 1→2 with
// the fast path, e uses 3→4 without; each client reaches its own Service,
// whose one backend is the pod on the other node). Every round runs every
// mode (order rotated per
// round), each with UDP ping-pong latency (sockperf, 64 B, p50/p99 of
// half the round trip as sockperf reports it), UDP 1400 B packets/s
// received (iperf3 -u -b 0) and one TCP stream (iperf3). Client and server
// are pinned to the same CPU. The first table shows min/median/max over
// rounds and the median of the per-round ratios to (a) and to (b); the
// second the Service modes and the median per-round ratio (f)/(e).
//
// Owns: the benchmark's rounds, measurements and tables.
//
// Imports (podrouter): lab.
package main
