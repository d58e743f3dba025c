/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connection tracking: one LRU entry per flow, keyed canonically so both
 * directions share one lookup. Lifetimes are expiry timestamps; userspace
 * deletes expired entries (the LRU evicts under pressure). */
#ifndef PODROUTER_CONNTRACK_H
#define PODROUTER_CONNTRACK_H

#include "maps.h"
#include "parse.h"
#include "kconntrack.h"

/* Bit or-ed into pr_ct_track's verdict when the flow goes to the stack. */
#define PR_CT_F_STACK 0x100
#define PR_CT_VERDICT(v) ((v) & 0xff)

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
 * verdict (New, Established, Reply), or-ed with PR_CT_F_STACK when the
 * flow must go to the kernel stack. */
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
		return (reply ? PR_CT_REPLY : PR_CT_ESTABLISHED) |
		       (flags & PR_CTF_STACK ? PR_CT_F_STACK : 0);
	}

	/* A new flow for the fast path: does netfilter translate it? Only a
	 * miss asks (a new flow, or one whose entry expired); the answer is
	 * remembered in the entry, so later packets of either direction
	 * skip the kfunc. A flow netfilter translates has an nf_conntrack
	 * entry by the time the fast path sees it: its first packets went
	 * through the stack (a pass prefix, the node's address, or an
	 * uplink packet not for a local pod), and the fast path's first
	 * packet of it is usually nf_conntrack's reply. */
	int kct = PR_KCT_NONE;

	/* Except a TCP SYN without ACK: a connection's opening packet
	 * crosses the fast path before netfilter could know its flow (the
	 * fast path never sees a packet the node's netfilter has already
	 * handled in the same direction), so no lookup; this spares every
	 * new TCP connection the kfunc. Its reply (SYN-ACK) asks. */
	if (run_kct_mode != PR_KCT_OFF &&
	    (p->proto != IPPROTO_TCP || (p->tcp_flags & (PR_TCP_SYN | PR_TCP_ACK)) != PR_TCP_SYN))
		kct = pr_kct_lookup(skb, p);
	/* The entry is oriented as nf_conntrack's original direction, so
	 * `bpf ct list` shows the client as the source. */
	int d = kct == PR_KCT_REPLY;
	int orig_is_a = d ? !src_is_a : src_is_a;
	struct pr_ct_entry n = {
		.created_ns = now,
		.ifindex = skb->ingress_ifindex,
		.flags = (orig_is_a ? PR_CTF_ORIG_IS_A : 0) | closing |
			 (kct != PR_KCT_NONE ? PR_CTF_STACK : 0) | (d ? PR_CTF_SEEN_REPLY : 0),
	};
	if (d) {
		n.packets[1] = 1;
		n.bytes[1] = p->len;
		n.tcp_flags[1] = p->tcp_flags;
	} else {
		n.packets[0] = 1;
		n.bytes[0] = p->len;
		n.tcp_flags[0] = p->tcp_flags;
	}
	n.expires_ns = now + pr_ct_lifetime(p->proto, n.flags);
	/* BPF_NOEXIST: a racing CPU that created it first wins; either way
	 * this packet is the flow's first. No lookup after the update: the
	 * verdict is all the caller needs. */
	bpf_map_update_elem(map, &k, &n, BPF_NOEXIST);
	return PR_CT_NEW | (kct != PR_KCT_NONE ? PR_CT_F_STACK : 0);
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

/* Conntrack of a packet to forward: track it (*verdict), or, untracked (an
 * ICMP error), look up the flow it is about. Returns nonzero when the
 * packet goes to the stack, because netfilter translates its flow. */
static __always_inline int pr_ct_stack(struct __sk_buff *skb, const struct pr_pkt *p, int *verdict)
{
	int r;

	if (p->tracked) {
		r = pr_ct_track(skb, p);
		*verdict = PR_CT_VERDICT(r);
		return r & PR_CT_F_STACK;
	}
	if (run_kct_mode != PR_KCT_OFF) /* an ICMP error */
		return pr_kct_icmp_error(skb, p) != PR_KCT_NONE;
	return 0;
}

#endif /* PODROUTER_CONNTRACK_H */
