/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* BTF map definitions and load-time configuration. Every map is pinned by
 * name under the daemon's pin directory so that a restart keeps conntrack,
 * endpoints and next hops; both entry objects share the same maps. */
#ifndef PODROUTER_MAPS_H
#define PODROUTER_MAPS_H

#include "types.h"

/* Default sizes; the daemon overrides max_entries at load time. */
#define PR_CT_TCP_DEFAULT 262144
#define PR_CT_OTHER_DEFAULT 65536
#define PR_ENDPOINTS_MAX 4096
#define PR_NODE_ADDRS_MAX 64
#define PR_LPM_MAX 256

/* Load-time configuration (rewritten by datapath/ before loading). */
volatile const __u64 cfg_ct_tcp_syn_ns = 60ULL * 1000000000;       /* TCP before a reply is seen */
volatile const __u64 cfg_ct_tcp_est_ns = 21600ULL * 1000000000;    /* TCP established */
volatile const __u64 cfg_ct_tcp_fin_ns = 10ULL * 1000000000;       /* TCP after FIN/RST */
volatile const __u64 cfg_ct_udp_ns = 60ULL * 1000000000;           /* UDP */
volatile const __u64 cfg_ct_icmp_ns = 30ULL * 1000000000;          /* ICMP/ICMPv6 echo */
volatile const __u64 cfg_ct_refresh_ns = 1ULL * 1000000000;        /* rewrite expiry at most this often */
volatile const __u8 cfg_ttl_dec = 1;         /* TTL decrement; 0 only for repeat benchmarks */
volatile const __u8 cfg_pass_prefixes = 1;   /* 1: consult pr_pass_prefixes (0 only for benchmarks) */
volatile const __u8 cfg_nh_prefixes = 0;     /* 1: cached next hop only inside pr_nh_prefixes */
volatile const __u8 cfg_fib_fallback = 1;    /* 1: bpf_fib_lookup when no cached next hop */

/* Runtime setting (.data, not const: datapath/ writes it while the
 * programs run, through the mmaped section, without a reload): what a
 * conntrack miss asks nf_conntrack (enum pr_kct_mode). The daemon switches it
 * to PR_KCT_ANY when it finds kube-proxy in a mode whose translations
 * nf_conntrack does not mark as NAT (IPVS). Read once per conntrack miss. */
volatile __u8 run_kct_mode = PR_KCT_NAT;

/* Conntrack for TCP. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PR_CT_TCP_DEFAULT);
	__type(key, struct pr_ct_key);
	__type(value, struct pr_ct_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pr_ct_tcp SEC(".maps");

/* Conntrack for UDP and ICMP. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PR_CT_OTHER_DEFAULT);
	__type(key, struct pr_ct_key);
	__type(value, struct pr_ct_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pr_ct_other SEC(".maps");

/* Local pods by IP address. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PR_ENDPOINTS_MAX);
	__type(key, struct pr_addr_key);
	__type(value, struct pr_endpoint);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pr_endpoints SEC(".maps");

/* Addresses of the node itself (value unused, 1). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PR_NODE_ADDRS_MAX);
	__type(key, struct pr_addr_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pr_node_addrs SEC(".maps");

/* Next-hop slots: [0, PR_NH_SLOTS) IPv4, [PR_NH_SLOTS, 2*PR_NH_SLOTS) IPv6. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * PR_NH_SLOTS);
	__type(key, __u32);
	__type(value, struct pr_nexthop);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pr_nexthops SEC(".maps");

/* Destinations always handed to the stack (e.g. service CIDRs). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, PR_LPM_MAX);
	__type(key, struct pr_lpm_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pr_pass_prefixes SEC(".maps");

/* Destinations that may use the cached next hop (when cfg_nh_prefixes). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, PR_LPM_MAX);
	__type(key, struct pr_lpm_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pr_nh_prefixes SEC(".maps");

/* Per-CPU counters by direction and reason. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PR_DIR_MAX * PR_REASON_MAX);
	__type(key, __u32);
	__type(value, struct pr_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pr_counters SEC(".maps");

/* Trace settings: one entry, zero = tracing off. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pr_trace_cfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pr_trace_settings SEC(".maps");

/* Trace/drop events for `podrouter monitor`. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pr_events SEC(".maps");

#endif /* PODROUTER_MAPS_H */
