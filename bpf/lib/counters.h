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

/* Emit an event when a listener enabled its type; trace events are sampled
 * (1 of sample_rate), drops are not. Nothing is written while tracing is off. */
static __always_inline void pr_trace(struct __sk_buff *skb, __u8 type, __u8 verdict,
				     __u8 reason, const struct pr_pkt *p, __u32 target,
				     __u32 ep_id)
{
	__u32 zero = 0;
	struct pr_trace_cfg *tc = bpf_map_lookup_elem(&pr_trace_settings, &zero);
	struct pr_event *ev;

	if (!tc || !(tc->enabled & (1U << type)))
		return;
	if (type != PR_EV_DROP && tc->sample_rate > 1 &&
	    bpf_get_prandom_u32() % tc->sample_rate != 0)
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
static __always_inline int pr_not_forwarded(struct __sk_buff *skb, __u32 dir, int reason,
					    const struct pr_pkt *p)
{
	pr_count(dir, reason, skb->len);
	if (reason >= PR_DROP_MALFORMED) {
		pr_trace(skb, PR_EV_DROP, PR_CT_NONE, reason, p, 0, 0);
		return TC_ACT_SHOT;
	}
	pr_trace(skb, PR_EV_TO_STACK, PR_CT_NONE, reason, p, 0, 0);
	return TC_ACT_OK;
}

#endif /* PODROUTER_COUNTERS_H */
