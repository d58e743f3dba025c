/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The kernel's conntrack (nf_conntrack), asked through the bpf_skb_ct_lookup
 * kfunc when podrouter's own conntrack misses: a flow that netfilter
 * translates (kube-proxy's DNAT for a Service, SNAT/masquerade) must cross
 * netfilter in both directions, or the reverse translation never happens.
 * Loading fails on a kernel without the kfunc (the daemon then keeps the
 * kernel path): no __weak fallback, since running without it would break
 * every Service silently. */
#ifndef PODROUTER_KCONNTRACK_H
#define PODROUTER_KCONNTRACK_H

#include <linux/netfilter/nf_conntrack_tuple_common.h> /* IPS_*, IP_CT_DIR_* */
#include "maps.h"
#include "parse.h"

/* The one field of the kernel's struct nf_conn read here. CO-RE relocates
 * its offset against the running kernel's BTF: no vmlinux.h needed. */
struct nf_conn {
	unsigned long status; /* enum ip_conntrack_status bits */
} __attribute__((preserve_access_index));

/* Options of the conntrack kfuncs (net/netfilter/nf_conntrack_bpf.c). The
 * 12-byte layout is accepted by every kernel with the kfuncs (later ones
 * grew it to 16 bytes for a zone; 12 keeps the default zone). */
struct bpf_ct_opts {
	__s32 netns_id;   /* BPF_F_CURRENT_NETNS: the netns of skb->dev */
	__s32 error;      /* out: -ENOENT when no entry, other -errno */
	__u8 l4proto;     /* IPPROTO_TCP or IPPROTO_UDP (nothing else supported) */
	__u8 dir;         /* out: IP_CT_DIR_ORIGINAL or IP_CT_DIR_REPLY of the match */
	__u8 reserved[2]; /* must be zero */
};

#define PR_CT_OPTS_SZ 12

extern struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *skb, struct bpf_sock_tuple *tuple,
					 __u32 tuple__sz, struct bpf_ct_opts *opts,
					 __u32 opts__sz) __ksym;
extern void bpf_ct_release(struct nf_conn *ct) __ksym;

/* Result of pr_kct_lookup. */
#define PR_KCT_NONE 0  /* no entry, or one netfilter does not translate: fast path */
#define PR_KCT_ORIG 1  /* stack; the packet travels in nf_conntrack's original direction */
#define PR_KCT_REPLY 2 /* stack; the packet travels in nf_conntrack's reply direction */

/* Look packet *p up in nf_conntrack (TCP and UDP only: the kfunc supports
 * nothing else). A BPF subprogram, not inlined: both conntrack maps' miss
 * paths call this one copy. The reference taken by the lookup is released
 * before returning. */
static __attribute__((noinline)) int pr_kct_lookup(struct __sk_buff *skb, const struct pr_pkt *p)
{
	struct bpf_ct_opts o = {
		.netns_id = BPF_F_CURRENT_NETNS,
		.l4proto = p->proto,
	};
	struct bpf_sock_tuple t;
	struct nf_conn *ct;
	unsigned long status;
	__u32 sz;

	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
		return PR_KCT_NONE;
	__builtin_memset(&t, 0, sizeof(t));
	if (p->family == 4) {
		t.ipv4.saddr = p->saddr[0];
		t.ipv4.daddr = p->daddr[0];
		t.ipv4.sport = p->sport;
		t.ipv4.dport = p->dport;
		sz = sizeof(t.ipv4);
	} else {
		__builtin_memcpy(t.ipv6.saddr, p->saddr, 16);
		__builtin_memcpy(t.ipv6.daddr, p->daddr, 16);
		t.ipv6.sport = p->sport;
		t.ipv6.dport = p->dport;
		sz = sizeof(t.ipv6);
	}
	ct = bpf_skb_ct_lookup(skb, &t, sz, &o, PR_CT_OPTS_SZ);
	if (!ct)
		return PR_KCT_NONE;
	status = ct->status;
	bpf_ct_release(ct);
	if (run_kct_mode != PR_KCT_ANY && !(status & (IPS_SRC_NAT | IPS_DST_NAT)))
		return PR_KCT_NONE;
	return o.dir == IP_CT_DIR_REPLY ? PR_KCT_REPLY : PR_KCT_ORIG;
}

/* An ICMP error (pr_parse: forwarded, untracked) about a flow netfilter
 * translates must cross netfilter too, which rewrites the embedded header:
 * else a connected UDP socket never sees its port unreachable, and a TCP
 * flow through a Service never sees its path MTU. The embedded packet is
 * one the error's sender received, so its tuple inverted is the one the
 * sender's replies carry: look that up. Only errors pay (they are rare);
 * the outer header has no IPv4 options / IPv6 extension (pr_parse), the
 * embedded one must have none either. */
static __attribute__((noinline)) int pr_kct_icmp_error(struct __sk_buff *skb, const struct pr_pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct pr_pkt in;
	__u16 *ports;

	__builtin_memset(&in, 0, sizeof(in));
	if (p->family == 4) {
		struct iphdr *ip = data + sizeof(struct ethhdr) + sizeof(struct iphdr) + 8;

		ports = (__u16 *)(ip + 1);
		if ((void *)(ports + 2) > end || ip->ihl != 5)
			return PR_KCT_NONE;
		in.proto = ip->protocol;
		in.saddr[0] = ip->daddr;
		in.daddr[0] = ip->saddr;
	} else {
		struct ipv6hdr *ip6 = data + sizeof(struct ethhdr) + sizeof(struct ipv6hdr) + 8;

		ports = (__u16 *)(ip6 + 1);
		if ((void *)(ports + 2) > end)
			return PR_KCT_NONE;
		in.proto = ip6->nexthdr;
		__builtin_memcpy(in.saddr, &ip6->daddr, 16);
		__builtin_memcpy(in.daddr, &ip6->saddr, 16);
	}
	in.family = p->family;
	in.sport = ports[1];
	in.dport = ports[0];
	return pr_kct_lookup(skb, &in);
}

#endif /* PODROUTER_KCONNTRACK_H */
