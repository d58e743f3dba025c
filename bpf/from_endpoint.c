// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* from-endpoint: tcx ingress on each pod's host-side veth (traffic leaving
 * a pod). Local pod -> bpf_redirect_peer; remote -> cached next hop or
 * fib + bpf_redirect_neigh out of the uplink; node itself, pass prefixes
 * and flows that netfilter translates -> stack. */

#include "lib/types.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/conntrack.h"
#include "lib/forward.h"
#include "lib/counters.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tcx/ingress")
int from_endpoint(struct __sk_buff *skb)
{
	const __u32 dir = PR_DIR_FROM_ENDPOINT;
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
	if (!ep) {
		if (pr_is_node_addr(p.family, p.daddr))
			return pr_not_forwarded(skb, tflags, dir, PR_PASS_NODE_LOCAL, &p);
		if (cfg_pass_prefixes && pr_lpm_match(&pr_pass_prefixes, p.family, p.daddr))
			return pr_not_forwarded(skb, tflags, dir, PR_PASS_PREFIX, &p);
	}

	stack = pr_ct_stack(skb, &p, &verdict);

	if (pr_tracing(tflags, PR_EV_FROM_ENDPOINT)) {
		/* The source pod's id costs a lookup: only when traced. */
		struct pr_endpoint *src = pr_endpoint_lookup(p.family, p.saddr);

		pr_trace(skb, tflags, PR_EV_FROM_ENDPOINT, verdict, 0, &p, 0, src ? src->id : 0);
	}
	if (stack)
		return pr_to_stack_ct(skb, tflags, dir, PR_PASS_NAT, verdict, &p);

	if (ep) {
		f = pr_to_endpoint(skb, &p, ep);
		if (f.action == TC_ACT_REDIRECT) {
			pr_count(dir, f.reason, p.len);
			pr_trace(skb, tflags, PR_EV_TO_ENDPOINT, verdict, f.reason, &p, f.target, ep->id);
			return f.action;
		}
	} else {
		f = pr_to_network(skb, &p);
		if (f.action == TC_ACT_REDIRECT) {
			pr_count(dir, f.reason, p.len);
			pr_trace(skb, tflags, PR_EV_TO_NETWORK, verdict, f.reason, &p, f.target, 0);
			return f.action;
		}
	}
	return pr_not_forwarded(skb, tflags, dir, f.reason, &p);
}
