/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-CPU counters and ring-buffer trace/drop events. */
#ifndef PODROUTER_COUNTERS_H
#define PODROUTER_COUNTERS_H

#include "maps.h"
#include "parse.h"

static __always_inline void pr_count(__u32 dir, __u32 reason, __u32 len)
{
	__u32 key = dir * PR_REASON_MAX + reason;
	struct pr_counter *c = bpf_map_lookup_elem(&pr_counters, &key);

	if (c) {
		c->packets++;
		c->bytes += len;
	}
}

/* The trace flags of one packet: the enabled event mask (1 << enum
 * pr_event_type), read from pr_trace_settings once per packet and passed
 * down to every pr_trace call, so tracing off costs this one array lookup.
 * Sampling (1 of sample_rate) is decided here, once per packet, so that the
 * from/to pair of a forwarded packet is kept or skipped together; drops are
 * never sampled out. */
static __always_inline __u32 pr_trace_flags(void)
{
	__u32 zero = 0;
	struct pr_trace_cfg *tc = bpf_map_lookup_elem(&pr_trace_settings, &zero);
	__u32 flags;

	if (!tc)
		return 0;
	flags = tc->enabled;
	if (flags && tc->sample_rate > 1 && bpf_get_prandom_u32() % tc->sample_rate != 0)
		flags &= 1U << PR_EV_DROP;
	return flags;
}

/* Is an event of this type wanted for this packet? */
static __always_inline int pr_tracing(__u32 tflags, __u8 type)
{
	return tflags & (1U << type);
}

/* Has the fast path already decremented the TTL of the packet an event
 * describes? Only a redirect attempt (pr_to_endpoint, pr_to_network) does,
 * right before it redirects: so to-endpoint and to-network events, and a
 * drop-redirect. (A drop-malformed from a failed MAC rewrite after the
 * decrement cannot happen: pr_parse validated the Ethernet header.) */
static __always_inline int pr_ttl_decremented(__u8 type, __u8 reason)
{
	return type == PR_EV_TO_ENDPOINT || type == PR_EV_TO_NETWORK ||
	       (type == PR_EV_DROP && reason == PR_DROP_REDIRECT);
}

/* Fill the header fields of *ev (type, reason, family and proto already
 * set) from the packet's linear data. Called only for an event being
 * written: the untraced path pays nothing, where copying these fields into
 * struct pr_pkt while parsing would cost every packet. The offsets are the
 * ones pr_parse validated once it set the family: IPv4 without options,
 * IPv6 with L4 right after the fixed header (an extension header leaves
 * proto at its own number, which decodes no L4 here). Direct packet reads,
 * no helper calls; a field cut short leaves its PR_EVH_* bit clear. A BPF
 * subprogram, not inlined: every pr_trace site shares this one copy. */
static __attribute__((noinline)) int pr_trace_hdrs(struct __sk_buff *skb, struct pr_event *ev)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	void *l4;
	__u8 ttl;

	if (ev->family == 4) {
		struct iphdr *iph = data + sizeof(struct ethhdr);

		if ((void *)(iph + 1) > end)
			return 0;
		ttl = iph->ttl;
		ev->tos = iph->tos;
		ev->ip_len = iph->tot_len;
		ev->ip_id = iph->id;
		ev->frag_off = iph->frag_off;
		l4 = iph + 1;
	} else if (ev->family == 6) {
		struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
		__u32 w;

		if ((void *)(ip6 + 1) > end)
			return 0;
		w = bpf_ntohl(*(__u32 *)ip6); /* version 4, traffic class 8, flow label 20 bits */
		ttl = ip6->hop_limit;
		ev->tos = (__u8)(w >> 20);
		ev->flow_lbl = w & 0xfffff;
		ev->ip_len = ip6->payload_len;
		l4 = ip6 + 1;
	} else {
		return 0;
	}
	if (pr_ttl_decremented(ev->type, ev->reason))
		ttl += cfg_ttl_dec;
	ev->ttl = ttl;
	ev->hdrs = PR_EVH_IP;

	switch (ev->proto) {
	case IPPROTO_TCP: {
		struct tcphdr *th = l4;

		if ((void *)(th + 1) > end)
			return 0;
		ev->tcp_seq = th->seq;
		ev->tcp_ack = th->ack_seq;
		ev->tcp_win = th->window;
		ev->tcp_flags = ((__u8 *)th)[13];
		break;
	}
	case IPPROTO_UDP: {
		struct udphdr *uh = l4;

		if ((void *)(uh + 1) > end)
			return 0;
		ev->udp_len = uh->len;
		break;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: { /* the same first 8 bytes */
		struct pr_icmphdr *ih = l4;

		if ((void *)(ih + 1) > end)
			return 0;
		ev->icmp_type = ih->type;
		ev->icmp_code = ih->code;
		ev->icmp_data = *(__u32 *)&ih->id;
		break;
	}
	default:
		return 0;
	}
	ev->hdrs |= PR_EVH_L4;
	return 0;
}

/* Emit an event when the packet's trace flags (pr_trace_flags) enable its
 * type. Nothing is written while tracing is off. */
static __always_inline void pr_trace(struct __sk_buff *skb, __u32 tflags, __u8 type, __u8 verdict,
				     __u8 reason, const struct pr_pkt *p, __u32 target,
				     __u32 ep_id)
{
	struct pr_event *ev;

	if (!pr_tracing(tflags, type))
		return;
	ev = bpf_ringbuf_reserve(&pr_events, sizeof(*ev), 0);
	if (!ev)
		return;
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->ts_ns = bpf_ktime_get_ns();
	ev->type = type;
	ev->ct_verdict = verdict;
	ev->reason = reason;
	ev->family = p->family;
	ev->ifindex = skb->ingress_ifindex;
	ev->target = target;
	ev->ep_id = ep_id;
	__builtin_memcpy(ev->saddr, p->saddr, 16);
	__builtin_memcpy(ev->daddr, p->daddr, 16);
	ev->sport = p->sport;
	ev->dport = p->dport;
	ev->proto = p->proto;
	ev->len = skb->len;
	pr_trace_hdrs(skb, ev);
	bpf_ringbuf_submit(ev, 0);
}

/* Count and trace a tracked packet that conntrack hands to the stack. */
static __always_inline int pr_to_stack_ct(struct __sk_buff *skb, __u32 tflags, __u32 dir,
					  int reason, __u8 verdict, const struct pr_pkt *p)
{
	pr_count(dir, reason, skb->len);
	pr_trace(skb, tflags, PR_EV_TO_STACK, verdict, reason, p, 0, 0);
	return TC_ACT_OK;
}

/* Count and trace a packet that is not forwarded: pass to the stack, or drop. */
static __always_inline int pr_not_forwarded(struct __sk_buff *skb, __u32 tflags, __u32 dir,
					    int reason, const struct pr_pkt *p)
{
	pr_count(dir, reason, skb->len);
	if (reason >= PR_DROP_MALFORMED) {
		pr_trace(skb, tflags, PR_EV_DROP, PR_CT_NONE, reason, p, 0, 0);
		return TC_ACT_SHOT;
	}
	pr_trace(skb, tflags, PR_EV_TO_STACK, PR_CT_NONE, reason, p, 0, 0);
	return TC_ACT_OK;
}

#endif /* PODROUTER_COUNTERS_H */
