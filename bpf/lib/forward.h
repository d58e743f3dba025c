/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Forwarding: endpoint and node lookups, next-hop choice, TTL and MAC
 * rewrite, redirects. */
#ifndef PODROUTER_FORWARD_H
#define PODROUTER_FORWARD_H

#include "maps.h"
#include "parse.h"

static __always_inline void pr_addr_key_fill(struct pr_addr_key *k, __u8 family, const __u32 *a)
{
	__builtin_memset(k, 0, sizeof(*k));
	__builtin_memcpy(k->addr, a, 16);
	k->family = family;
}

static __always_inline struct pr_endpoint *pr_endpoint_lookup(__u8 family, const __u32 *a)
{
	struct pr_addr_key k;

	pr_addr_key_fill(&k, family, a);
	return bpf_map_lookup_elem(&pr_endpoints, &k);
}

static __always_inline int pr_is_node_addr(__u8 family, const __u32 *a)
{
	struct pr_addr_key k;

	pr_addr_key_fill(&k, family, a);
	return bpf_map_lookup_elem(&pr_node_addrs, &k) != NULL;
}

static __always_inline int pr_lpm_match(void *trie, __u8 family, const __u32 *a)
{
	struct pr_lpm_key k;

	__builtin_memset(&k, 0, sizeof(k));
	k.prefixlen = 32 + (family == 4 ? 32 : 128);
	k.family = family;
	__builtin_memcpy(k.addr, a, 16);
	return bpf_map_lookup_elem(trie, &k) != NULL;
}

/* Flow hash over the 5-tuple (not symmetric; only egress uses it). */
static __always_inline __u32 pr_flow_hash(const struct pr_pkt *p)
{
	__u32 h = p->saddr[0] ^ p->saddr[1] ^ p->saddr[2] ^ p->saddr[3];

	h ^= p->daddr[0] ^ p->daddr[1] ^ p->daddr[2] ^ p->daddr[3];
	h ^= ((__u32)p->sport << 16 | p->dport) ^ p->proto;
	h *= 0x9e3779b1U; /* golden-ratio multiplicative hash */
	return h ^ (h >> 16);
}

/* The cached next hop for *p, or NULL when its slot is empty/stale. */
static __always_inline struct pr_nexthop *pr_nexthop_pick(const struct pr_pkt *p)
{
	__u32 slot = pr_flow_hash(p) % PR_NH_SLOTS + (p->family == 6 ? PR_NH_SLOTS : 0);
	struct pr_nexthop *nh = bpf_map_lookup_elem(&pr_nexthops, &slot);

	if (!nh || !nh->valid)
		return NULL;
	return nh;
}

/* Decrement TTL / hop limit (pr_parse guaranteed > 1) and patch the IPv4
 * header checksum incrementally (RFC 1624). Returns 0 or a drop reason. */
static __always_inline int pr_dec_ttl(struct __sk_buff *skb, __u8 family)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;

	if (family == 4) {
		struct iphdr *iph = data + sizeof(struct ethhdr);
		__u32 sum;

		if ((void *)(iph + 1) > end)
			return PR_DROP_MALFORMED;
		iph->ttl -= cfg_ttl_dec;
		/* TTL is the high byte of a 16-bit word: the word drops by
		 * 0x0100 * dec, so the one's-complement sum rises by it. */
		sum = (__u32)iph->check + (__u32)bpf_htons((__u16)cfg_ttl_dec << 8);
		iph->check = (__u16)(sum + (sum >> 16));
		return 0;
	}
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
	__u32 before, after;

	if ((void *)(ip6 + 1) > end)
		return PR_DROP_MALFORMED;
	/* IPv6 has no header checksum to compensate the change, so a
	 * CHECKSUM_COMPLETE value (NIC receive, covers the IPv6 header) must
	 * follow it, or the pod's stack sees a bad checksum. bpf_csum_update
	 * only touches CHECKSUM_COMPLETE skbs: CHECKSUM_PARTIAL (GSO from a
	 * local socket) covers only the L4 pseudo-header and stays as is. */
	before = *(__u32 *)((__u8 *)ip6 + 4); /* payload_len, nexthdr, hop_limit */
	ip6->hop_limit -= cfg_ttl_dec;
	after = *(__u32 *)((__u8 *)ip6 + 4);
	bpf_csum_update(skb, bpf_csum_diff(&before, 4, &after, 4, 0));
	return 0;
}

/* Rewrite the Ethernet addresses. Returns 0 or a drop reason. */
static __always_inline int pr_rewrite_l2(struct __sk_buff *skb, const __u8 *smac, const __u8 *dmac)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return PR_DROP_MALFORMED;
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	return 0;
}

/* Outcome of a forwarding attempt. */
struct pr_fwd {
	int action;   /* TC_ACT_* to return */
	__u32 reason; /* enum pr_reason to count */
	__u32 target; /* ifindex redirected to, 0 if none */
};

/* Deliver *p to local pod *ep through its veth peer. */
static __always_inline struct pr_fwd pr_to_endpoint(struct __sk_buff *skb, const struct pr_pkt *p,
						    const struct pr_endpoint *ep)
{
	struct pr_fwd f = { .action = TC_ACT_SHOT, .reason = PR_DROP_MALFORMED };

	if (pr_dec_ttl(skb, p->family) || pr_rewrite_l2(skb, ep->host_mac, ep->pod_mac))
		return f;
	f.action = bpf_redirect_peer(ep->ifindex, 0);
	f.reason = f.action == TC_ACT_REDIRECT ? PR_FWD_REDIRECT_PEER : PR_DROP_REDIRECT;
	f.target = ep->ifindex;
	return f;
}

/* Send *p towards the network: cached next hop, else fib + redirect_neigh. */
static __always_inline struct pr_fwd pr_to_network(struct __sk_buff *skb, const struct pr_pkt *p)
{
	struct pr_fwd f = { .action = TC_ACT_SHOT, .reason = PR_DROP_MALFORMED };
	struct pr_nexthop *nh = NULL;

	if (!cfg_nh_prefixes || pr_lpm_match(&pr_nh_prefixes, p->family, p->daddr))
		nh = pr_nexthop_pick(p);
	if (nh) {
		if (pr_dec_ttl(skb, p->family) || pr_rewrite_l2(skb, nh->src_mac, nh->dst_mac))
			return f;
		f.action = bpf_redirect(nh->ifindex, 0);
		f.reason = f.action == TC_ACT_REDIRECT ? PR_FWD_NEXTHOP : PR_DROP_REDIRECT;
		f.target = nh->ifindex;
		return f;
	}
	if (!cfg_fib_fallback) {
		f.action = TC_ACT_OK;
		f.reason = PR_PASS_FIB;
		return f;
	}

	struct bpf_fib_lookup fib;
	struct bpf_redir_neigh rn;
	long rc;

	__builtin_memset(&fib, 0, sizeof(fib));
	__builtin_memset(&rn, 0, sizeof(rn));
	fib.l4_protocol = p->proto;
	fib.sport = p->sport;
	fib.dport = p->dport;
	fib.tot_len = 0; /* never the IP length: GSO packets would get FRAG_NEEDED */
	fib.ifindex = skb->ingress_ifindex;
	if (p->family == 4) {
		fib.family = PR_AF_INET;
		fib.ipv4_src = p->saddr[0];
		fib.ipv4_dst = p->daddr[0];
	} else {
		fib.family = PR_AF_INET6;
		__builtin_memcpy(fib.ipv6_src, p->saddr, 16);
		__builtin_memcpy(fib.ipv6_dst, p->daddr, 16);
	}
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_SKIP_NEIGH);
	if (rc == BPF_FIB_LKUP_RET_NOT_FWDED) {
		f.action = TC_ACT_OK;
		f.reason = PR_PASS_NODE_LOCAL;
		return f;
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH) {
		f.action = TC_ACT_OK;
		f.reason = PR_PASS_FIB;
		return f;
	}
	if (pr_dec_ttl(skb, p->family))
		return f;
	if (p->family == 4) {
		rn.nh_family = PR_AF_INET;
		rn.ipv4_nh = fib.ipv4_dst;
	} else {
		rn.nh_family = PR_AF_INET6;
		__builtin_memcpy(rn.ipv6_nh, fib.ipv6_dst, 16);
	}
	f.action = bpf_redirect_neigh(fib.ifindex, &rn, sizeof(rn), 0);
	f.reason = f.action == TC_ACT_REDIRECT ? PR_FWD_REDIRECT_NEIGH : PR_DROP_REDIRECT;
	f.target = fib.ifindex;
	return f;
}

#endif /* PODROUTER_FORWARD_H */
