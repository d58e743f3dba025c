// Command podrouter-bench measures pod networking side by side in the
// netns lab (`make bench`, as root; a development tool, not in the shipped
// image): (a) node↔node, (b) pod↔pod on kernel routing, (c) pod↔pod on
// kernel routing with a legacy-CNI iptables/conntrack ruleset in both
// nodes, (d) pod↔pod on podrouter's eBPF fast path.
//
// Two labs run at once: one without the fast path (4 nodes: a and b use
// nodes 1→2, c uses nodes 3→4 which carry the ruleset) and one with it
// (2 nodes: d uses 1→2). Every round runs every mode (order rotated per
// round), each with UDP ping-pong latency (sockperf, 64 B, p50/p99 of
// half the round trip as sockperf reports it), UDP 1400 B packets/s
// received (iperf3 -u -b 0) and one TCP stream (iperf3). Client and server
// are pinned to the same CPU. The table shows min/median/max over rounds
// and the median of the per-round ratios to (a) and to (b).
package main
