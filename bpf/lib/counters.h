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
	bpf_ringbuf_submit(ev, 0);
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
