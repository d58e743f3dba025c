/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connection tracking: one LRU entry per flow, keyed canonically so both
 * directions share one lookup. Lifetimes are expiry timestamps; userspace
 * deletes expired entries (the LRU evicts under pressure). */
#ifndef PODROUTER_CONNTRACK_H
#define PODROUTER_CONNTRACK_H

#include "maps.h"
#include "parse.h"

/* Fill *k from *p in canonical order; return 1 when the packet's source is
 * side a of the key. */
static __always_inline int pr_ct_key_fill(const struct pr_pkt *p, struct pr_ct_key *k)
{
	int src_is_a = 1;

	__builtin_memset(k, 0, sizeof(*k));
	if (p->saddr[0] != p->daddr[0])
		src_is_a = p->saddr[0] < p->daddr[0];
	else if (p->saddr[1] != p->daddr[1])
		src_is_a = p->saddr[1] < p->daddr[1];
	else if (p->saddr[2] != p->daddr[2])
		src_is_a = p->saddr[2] < p->daddr[2];
	else if (p->saddr[3] != p->daddr[3])
		src_is_a = p->saddr[3] < p->daddr[3];
	else
		src_is_a = p->sport <= p->dport;

	if (src_is_a) {
		__builtin_memcpy(k->addr_a, p->saddr, 16);
		__builtin_memcpy(k->addr_b, p->daddr, 16);
		k->port_a = p->sport;
		k->port_b = p->dport;
	} else {
		__builtin_memcpy(k->addr_a, p->daddr, 16);
		__builtin_memcpy(k->addr_b, p->saddr, 16);
		k->port_a = p->dport;
		k->port_b = p->sport;
	}
	k->proto = p->proto;
	k->family = p->family;
	return src_is_a;
}

/* Lifetime of an entry given its flags and protocol. */
static __always_inline __u64 pr_ct_lifetime(__u8 proto, __u8 flags)
{
	if (proto == IPPROTO_TCP) {
		if (flags & PR_CTF_CLOSING)
			return cfg_ct_tcp_fin_ns;
		if (flags & PR_CTF_SEEN_REPLY)
			return cfg_ct_tcp_est_ns;
		return cfg_ct_tcp_syn_ns;
	}
	if (proto == IPPROTO_UDP)
		return cfg_ct_udp_ns;
	return cfg_ct_icmp_ns;
}

/* Track packet *p: find or create its entry in map (a constant map pointer:
 * the verifier then inlines the lookup and calls the map's update directly;
 * a pointer chosen at run time would force the generic helpers and an
 * indirect call per packet), account it, refresh the expiry. Returns the
 * verdict (New, Established, Reply). */
static __always_inline int pr_ct_track_in(void *map, struct __sk_buff *skb, const struct pr_pkt *p)
{
	__u8 closing = p->tcp_flags & (PR_TCP_FIN | PR_TCP_RST) ? PR_CTF_CLOSING : 0;
	/* Coarse clock: no clocksource read (costly in VMs); a tick of lag is
	 * irrelevant for lifetimes of seconds. Same base as CLOCK_MONOTONIC. */
	__u64 now = bpf_ktime_get_coarse_ns();
	struct pr_ct_entry *e;
	struct pr_ct_key k;
	int src_is_a;

	src_is_a = pr_ct_key_fill(p, &k);
	e = bpf_map_lookup_elem(map, &k);
	if (e) {
		int reply = src_is_a != !!(e->flags & PR_CTF_ORIG_IS_A);
		__u8 flags = e->flags | closing | (reply ? PR_CTF_SEEN_REPLY : 0);
		__u64 exp = now + pr_ct_lifetime(p->proto, flags);

		if (reply) {
			__sync_fetch_and_add(&e->packets[1], 1);
			__sync_fetch_and_add(&e->bytes[1], p->len);
			if ((e->tcp_flags[1] | p->tcp_flags) != e->tcp_flags[1])
				e->tcp_flags[1] |= p->tcp_flags;
		} else {
			__sync_fetch_and_add(&e->packets[0], 1);
			__sync_fetch_and_add(&e->bytes[0], p->len);
			if ((e->tcp_flags[0] | p->tcp_flags) != e->tcp_flags[0])
				e->tcp_flags[0] |= p->tcp_flags;
		}
		if (flags != e->flags) {
			e->flags = flags;
			e->expires_ns = exp;
		} else if (exp > e->expires_ns + cfg_ct_refresh_ns) {
			e->expires_ns = exp;
		}
		return reply ? PR_CT_REPLY : PR_CT_ESTABLISHED;
	}

	/* Every field is assigned: no memset of the value. */
	struct pr_ct_entry n = {
		.created_ns = now,
		.packets = { 1, 0 },
		.bytes = { p->len, 0 },
		.ifindex = skb->ingress_ifindex,
		.flags = (src_is_a ? PR_CTF_ORIG_IS_A : 0) | closing,
		.tcp_flags = { p->tcp_flags, 0 },
		.pad = 0,
	};
	n.expires_ns = now + pr_ct_lifetime(p->proto, n.flags);
	/* BPF_NOEXIST: a racing CPU that created it first wins; either way
	 * this packet is the flow's first. No lookup after the update: the
	 * verdict is all the caller needs. */
	bpf_map_update_elem(map, &k, &n, BPF_NOEXIST);
	return PR_CT_NEW;
}

static __always_inline int pr_ct_track(struct __sk_buff *skb, const struct pr_pkt *p)
{
	int v;

	/* The two (different) empty asm statements keep clang from merging
	 * the tails of both copies into one helper call fed by either map,
	 * which the verifier would have to treat as an unknown map. */
	if (p->proto == IPPROTO_TCP) {
		v = pr_ct_track_in(&pr_ct_tcp, skb, p);
		asm volatile("/* ct tcp */" ::: "memory");
	} else {
		v = pr_ct_track_in(&pr_ct_other, skb, p);
		asm volatile("/* ct other */" ::: "memory");
	}
	return v;
}

#endif /* PODROUTER_CONNTRACK_H */
