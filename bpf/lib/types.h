/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Types shared between the BPF programs and datapath/ (Go, via bpf2go -type).
 * Every struct is padded explicitly so C and Go agree byte for byte; the Go
 * side checks unsafe.Sizeof against the PR_SIZEOF_* values exported below. */
#ifndef PODROUTER_TYPES_H
#define PODROUTER_TYPES_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/icmpv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* ICMPv4 header (linux/icmp.h drags in libc headers). */
struct pr_icmphdr {
	__u8 type;      /* ICMP type */
	__u8 code;      /* ICMP code */
	__u16 checksum; /* ICMP checksum */
	__u16 id;       /* echo identifier, network order */
	__u16 seq;      /* echo sequence, network order */
};

#define PR_ICMP_ECHOREPLY 0
#define PR_ICMP_DEST_UNREACH 3
#define PR_ICMP_ECHO 8
#define PR_ICMP_TIME_EXCEEDED 11
#define PR_ICMP_PARAMETERPROB 12

#define PR_AF_INET 2   /* AF_INET, as bpf_fib_lookup wants it */
#define PR_AF_INET6 10 /* AF_INET6 */

/* Number of next-hop slots per address family in pr_nexthops. The daemon
 * spreads its ECMP set over the slots (round robin); a flow hash picks one. */
#define PR_NH_SLOTS 64

/* Direction a packet travels, used to index the counters. */
enum pr_dir {
	PR_DIR_FROM_ENDPOINT = 0, /* pod -> host veth ingress */
	PR_DIR_FROM_NETWORK = 1,  /* uplink ingress */
	PR_DIR_MAX = 2,
};

/* Why a packet was forwarded, passed to the stack or dropped. */
enum pr_reason {
	PR_FWD_REDIRECT_PEER = 0,  /* local pod: bpf_redirect_peer */
	PR_FWD_NEXTHOP = 1,        /* remote: cached next hop + bpf_redirect */
	PR_FWD_REDIRECT_NEIGH = 2, /* remote: bpf_fib_lookup + bpf_redirect_neigh */
	PR_PASS_NOT_IP = 3,        /* ARP, VLAN, anything not IPv4/IPv6 */
	PR_PASS_FRAGMENT = 4,      /* IPv4 fragment */
	PR_PASS_IP_OPTIONS = 5,    /* IPv4 header with options */
	PR_PASS_IPV6_EXTHDR = 6,   /* IPv6 extension header (incl. fragment) */
	PR_PASS_TTL = 7,           /* TTL / hop limit <= 1: stack sends ICMP */
	PR_PASS_PROTO = 8,         /* L4 protocol other than TCP/UDP/ICMP */
	PR_PASS_ICMP_CTRL = 9,     /* ICMP/ICMPv6 control (ND, MLD, ...) */
	PR_PASS_NON_UNICAST = 10,  /* multicast/broadcast/link-local address */
	PR_PASS_NODE_LOCAL = 11,   /* destination is this node */
	PR_PASS_NOT_ENDPOINT = 12, /* from-network: not for a local pod */
	PR_PASS_FIB = 13,          /* fib lookup failed: let the stack decide */
	PR_PASS_PREFIX = 14,       /* destination in the pass-to-stack prefixes */
	PR_PASS_NAT = 15,          /* flow translated by netfilter (conntrack entry flagged stack) */
	PR_DROP_MALFORMED = 16,    /* truncated or invalid headers */
	PR_DROP_REDIRECT = 17,     /* redirect helper refused */
	PR_REASON_MAX = 18,
};

/* Conntrack verdict of one packet. */
enum pr_ct_verdict {
	PR_CT_NONE = 0,        /* not tracked (ICMP errors, non-forwarded) */
	PR_CT_NEW = 1,         /* entry created by this packet */
	PR_CT_ESTABLISHED = 2, /* entry hit in the original direction */
	PR_CT_REPLY = 3,       /* entry hit in the reply direction */
};

/* Trace/drop event types sent on the ring buffer. */
enum pr_event_type {
	PR_EV_FROM_ENDPOINT = 1, /* seen on a pod veth, after conntrack */
	PR_EV_TO_NETWORK = 2,    /* from a pod, redirected to an uplink */
	PR_EV_FROM_NETWORK = 3,  /* seen on an uplink, after conntrack */
	PR_EV_TO_ENDPOINT = 4,   /* redirected into a pod (redirect_peer) */
	PR_EV_DROP = 5,          /* dropped */
	PR_EV_TO_STACK = 6,      /* passed to the kernel stack */
};

/* Flags of a conntrack entry (pr_ct_entry.flags). */
enum pr_ct_flags {
	PR_CTF_ORIG_IS_A = 1,     /* originator is side "a" of the canonical key */
	PR_CTF_SEEN_REPLY = 2,    /* a reply-direction packet was seen */
	PR_CTF_CLOSING = 4,       /* FIN or RST seen */
	PR_CTF_STACK = 8,         /* every packet of the flow goes to the kernel stack:
				   * nf_conntrack translates it (pr_kct_lookup) */
};

/* What a conntrack miss asks the kernel's nf_conntrack (run_kct_mode). */
enum pr_kct_mode {
	PR_KCT_OFF = 0, /* no lookup (benchmarks only: NATed flows would break) */
	PR_KCT_NAT = 1, /* flows netfilter translates (SNAT/DNAT) go to the stack */
	PR_KCT_ANY = 2, /* every flow nf_conntrack knows goes to the stack (IPVS) */
};

/* Conntrack key: the 5-tuple in canonical order (side "a" is the smaller
 * address/port pair), so both directions of a flow find one entry with one
 * lookup. IPv4 addresses live in a[0]/b[0], the rest stays zero. */
struct pr_ct_key {
	__u32 addr_a[4]; /* address of side a, network order */
	__u32 addr_b[4]; /* address of side b, network order */
	__u16 port_a;    /* L4 port of side a (ICMP echo: identifier), network order */
	__u16 port_b;    /* L4 port of side b (ICMP echo: identifier), network order */
	__u8 proto;      /* IPPROTO_* */
	__u8 family;     /* 4 or 6 */
	__u8 pad[2];     /* explicit padding, always zero */
};

/* Conntrack value. Index 0 of the arrays is the original direction, 1 the reply. */
struct pr_ct_entry {
	__u64 created_ns;  /* bpf_ktime_get_coarse_ns() at creation */
	__u64 expires_ns;  /* bpf_ktime_get_coarse_ns() deadline; userspace GC deletes after it */
	__u64 packets[2];  /* packets per direction */
	__u64 bytes[2];    /* bytes (skb->len) per direction */
	__u32 ifindex;     /* ingress ifindex of the packet that created the entry */
	__u8 flags;        /* enum pr_ct_flags */
	__u8 tcp_flags[2]; /* OR of TCP flags seen per direction */
	__u8 pad;          /* explicit padding, always zero */
};

/* Key of the endpoint map and the node address map. */
struct pr_addr_key {
	__u32 addr[4]; /* IPv4 in addr[0] (rest zero) or IPv6, network order */
	__u8 family;   /* 4 or 6 */
	__u8 pad[3];   /* explicit padding, always zero */
};

/* A local pod, as seen from its host-side veth. */
struct pr_endpoint {
	__u32 ifindex;     /* host-side veth ifindex (redirect_peer target) */
	__u32 id;          /* endpoint id chosen by the daemon (events, stats) */
	__u8 pod_mac[6];   /* MAC of the pod's interface (new destination MAC) */
	__u8 host_mac[6];  /* MAC of the host-side veth (new source MAC) */
	__u32 pad;         /* explicit padding, always zero */
};

/* One next-hop slot; the daemon fills it from the default route. */
struct pr_nexthop {
	__u32 ifindex;  /* uplink ifindex to redirect to */
	__u8 src_mac[6]; /* MAC of the uplink (new source MAC) */
	__u8 dst_mac[6]; /* MAC of the next hop (ToR) */
	__u8 valid;     /* 1 when the slot may be used; 0 = empty/stale */
	__u8 pad[3];    /* explicit padding, always zero */
};

/* Key of the LPM tries (pass-to-stack prefixes, next-hop prefixes). */
struct pr_lpm_key {
	__u32 prefixlen; /* LPM prefix length, counting the family byte block */
	__u8 family;     /* 4 or 6 (always fully matched: first 32 bits) */
	__u8 pad[3];     /* explicit padding, always zero */
	__u32 addr[4];   /* address, network order */
};

/* Per-CPU counter, indexed by dir * PR_REASON_MAX + reason. */
struct pr_counter {
	__u64 packets; /* packets counted */
	__u64 bytes;   /* bytes (skb->len) counted */
};

/* Runtime trace settings (array map, one entry, written by the daemon). */
struct pr_trace_cfg {
	__u32 enabled;     /* bitmask of (1 << enum pr_event_type); 0 = off */
	__u32 sample_rate; /* trace 1 of N packets (drops always); 0,1 = all */
};

/* Which header fields of a pr_event are filled (pr_event.hdrs). */
enum pr_event_hdrs {
	PR_EVH_IP = 1, /* ttl .. frag_off: the IPv4/IPv6 header */
	PR_EVH_L4 = 2, /* tcp_* (TCP), udp_len (UDP) or icmp_* (ICMP/ICMPv6) by proto */
};

/* Event sent on the ring buffer. The header fields (from ttl on) are read
 * from the packet only when the event is written (pr_trace_hdrs), so they
 * cost nothing while nobody traces. */
struct pr_event {
	__u64 ts_ns;     /* bpf_ktime_get_ns() */
	__u8 type;       /* enum pr_event_type */
	__u8 ct_verdict; /* enum pr_ct_verdict */
	__u8 reason;     /* enum pr_reason; unset (0) in from-* events */
	__u8 family;     /* 4 or 6, 0 when not IP */
	__u32 ifindex;   /* ingress ifindex */
	__u32 target;    /* redirect target ifindex, 0 if none */
	__u32 ep_id;     /* endpoint id (source or destination pod), 0 if none */
	__u32 saddr[4];  /* source address, network order */
	__u32 daddr[4];  /* destination address, network order */
	__u16 sport;     /* source port / ICMP id, network order */
	__u16 dport;     /* destination port, network order */
	__u8 proto;      /* IPPROTO_* */
	__u8 hdrs;       /* enum pr_event_hdrs: which header fields below are filled */
	__u8 ttl;        /* IPv4 TTL / IPv6 hop limit as the packet arrived at the
			  * hook, i.e. before the fast path decrements it, also
			  * in to-* events (the packet leaves with ttl - cfg_ttl_dec) */
	__u8 tos;        /* IPv4 TOS / IPv6 traffic class (DSCP << 2 | ECN) */
	__u32 len;       /* skb->len */
	__u32 flow_lbl;  /* IPv6 flow label, host order; 0 for IPv4 */
	__u16 ip_len;    /* IPv4 total length / IPv6 payload length, network order */
	__u16 ip_id;     /* IPv4 identification, network order; 0 for IPv6 */
	__u16 frag_off;  /* IPv4 flags (DF 0x4000, MF 0x2000) and fragment offset, network order */
	__u16 tcp_win;   /* TCP window as sent (unscaled), network order */
	__u32 tcp_seq;   /* TCP sequence number, network order */
	__u32 tcp_ack;   /* TCP acknowledgment number, network order */
	__u8 tcp_flags;  /* TCP flags byte: CWR ECE URG ACK PSH RST SYN FIN */
	__u8 icmp_type;  /* ICMP/ICMPv6 type */
	__u8 icmp_code;  /* ICMP/ICMPv6 code */
	__u8 pad;        /* explicit padding, always zero */
	__u16 udp_len;   /* UDP length (header + payload), network order */
	__u16 pad2;      /* explicit padding, always zero */
	__u32 icmp_data; /* ICMP/ICMPv6 header bytes 4..7 (echo id and sequence,
			  * or the next-hop MTU), network order */
	__u32 pad3;      /* explicit tail padding, always zero */
};

/* BTF anchor: references the shared types that no map mentions so they
 * reach BTF and bpf2go can emit Go declarations (-type). Never read. */
struct pr_btf_anchor {
	struct pr_event event;           /* ring buffer record */
	enum pr_dir dir;                 /* counter direction */
	enum pr_reason reason;           /* counter reason */
	enum pr_ct_verdict verdict;      /* conntrack verdict */
	enum pr_event_type event_type;   /* event type */
	enum pr_ct_flags ct_flags;       /* conntrack entry flags */
	enum pr_event_hdrs event_hdrs;   /* event header fields */
	enum pr_kct_mode kct_mode;       /* nf_conntrack lookup mode */
	__u32 pad;                       /* explicit tail padding */
};
volatile const struct pr_btf_anchor pr_btf_anchor_unused;

/* Sizes exported for the Go-side layout test (read from .rodata). */
volatile const __u32 PR_SIZEOF_CT_KEY = sizeof(struct pr_ct_key);
volatile const __u32 PR_SIZEOF_CT_ENTRY = sizeof(struct pr_ct_entry);
volatile const __u32 PR_SIZEOF_ADDR_KEY = sizeof(struct pr_addr_key);
volatile const __u32 PR_SIZEOF_ENDPOINT = sizeof(struct pr_endpoint);
volatile const __u32 PR_SIZEOF_NEXTHOP = sizeof(struct pr_nexthop);
volatile const __u32 PR_SIZEOF_LPM_KEY = sizeof(struct pr_lpm_key);
volatile const __u32 PR_SIZEOF_COUNTER = sizeof(struct pr_counter);
volatile const __u32 PR_SIZEOF_TRACE_CFG = sizeof(struct pr_trace_cfg);
volatile const __u32 PR_SIZEOF_EVENT = sizeof(struct pr_event);

_Static_assert(sizeof(struct pr_ct_key) == 40, "pr_ct_key layout");
_Static_assert(sizeof(struct pr_ct_entry) == 56, "pr_ct_entry layout");
_Static_assert(sizeof(struct pr_addr_key) == 20, "pr_addr_key layout");
_Static_assert(sizeof(struct pr_endpoint) == 24, "pr_endpoint layout");
_Static_assert(sizeof(struct pr_nexthop) == 20, "pr_nexthop layout");
_Static_assert(sizeof(struct pr_lpm_key) == 24, "pr_lpm_key layout");
_Static_assert(sizeof(struct pr_event) == 104, "pr_event layout");
_Static_assert(__builtin_offsetof(struct pr_event, flow_lbl) == 68, "pr_event: header fields after len");
_Static_assert(__builtin_offsetof(struct pr_event, icmp_data) == 96, "pr_event: icmp_data aligned");
_Static_assert(sizeof(struct pr_btf_anchor) == 136, "pr_btf_anchor: no implicit padding");

#endif /* PODROUTER_TYPES_H */
