// Package datapath owns podrouter's eBPF fast path: it loads the programs
// built from bpf/ (via bpf2go), pins every map and tcx link under one bpffs
// directory, attaches from-endpoint to each pod's host-side veth and
// from-network to the uplinks, fills the endpoint and next-hop maps,
// garbage-collects conntrack and reads counters and conntrack entries.
//
// It is the only package importing github.com/cilium/ebpf; its API speaks
// net/netip and plain Go types. When BPF cannot be loaded, Run returns an
// error wrapping ErrUnavailable and the kernel path keeps forwarding.
// Besides cilium/ebpf it reads links, routes and neighbours with netlink
// for endpoint discovery and next-hop MACs.
//
// Owns: the BPF objects, their pins under Config.PinDir, the desired
// endpoints, pod CIDRs and next hops, and the defaults of its Config
// (pin dir, conntrack sizes). Reports map usage as health.MapUsage.
//
// Imports (podrouter): health.
package datapath
