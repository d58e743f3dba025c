// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* from-network: tcx ingress on the node uplink(s). A packet for a local pod
 * is tracked, its TTL decremented and MACs rewritten, then it goes straight
 * into the pod's netns with bpf_redirect_peer; anything else, and flows that
 * netfilter translates (the replies of a Service's flows) -> stack. */

#include "lib/types.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/conntrack.h"
#include "lib/forward.h"
#include "lib/counters.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tcx/ingress")
int from_network(struct __sk_buff *skb)
{
	const __u32 dir = PR_DIR_FROM_NETWORK;
	const __u32 tflags = pr_trace_flags(); /* the one trace settings read */
	struct pr_endpoint *ep;
	struct pr_fwd f;
	struct pr_pkt p;
	int verdict = PR_CT_NONE;
	int stack;
	int r;

	__builtin_memset(&p, 0, sizeof(p));
	r = pr_parse(skb, &p);
	if (r != PR_PARSE_OK)
		return pr_not_forwarded(skb, tflags, dir, r, &p);

	ep = pr_endpoint_lookup(p.family, p.daddr);
	if (!ep)
		return pr_not_forwarded(skb, tflags, dir, PR_PASS_NOT_ENDPOINT, &p);

	stack = pr_ct_stack(skb, &p, &verdict);
	pr_trace(skb, tflags, PR_EV_FROM_NETWORK, verdict, 0, &p, 0, 0);
	if (stack)
		return pr_to_stack_ct(skb, tflags, dir, PR_PASS_NAT, verdict, &p);
	f = pr_to_endpoint(skb, &p, ep);
	if (f.action == TC_ACT_REDIRECT) {
		pr_count(dir, f.reason, p.len);
		pr_trace(skb, tflags, PR_EV_TO_ENDPOINT, verdict, f.reason, &p, f.target, ep->id);
		return f.action;
	}
	return pr_not_forwarded(skb, tflags, dir, f.reason, &p);
}
