/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Bounds-checked cursor parsing of Ethernet + IPv4/IPv6 + TCP/UDP/ICMP. */
#ifndef PODROUTER_PARSE_H
#define PODROUTER_PARSE_H

#include "types.h"

#define PR_IP_MF 0x2000      /* IPv4 more-fragments flag (host order) */
#define PR_IP_OFFSET 0x1fff  /* IPv4 fragment offset mask (host order) */
#define PR_PARSE_OK (-1)     /* pr_parse result when the packet is forwardable */
#define PR_PULL_LEN (14 + 40 + 20) /* bytes pulled when headers are cut short */

/* A cursor over the linear packet data. */
struct pr_cursor {
	void *pos; /* next unread byte */
	void *end; /* skb->data_end */
};

/* The parsed packet, in packet orientation (s = source, d = destination). */
struct pr_pkt {
	__u32 saddr[4];  /* source address, network order (IPv4 in [0]) */
	__u32 daddr[4];  /* destination address, network order (IPv4 in [0]) */
	__u16 sport;     /* source port / ICMP echo id, network order */
	__u16 dport;     /* destination port / ICMP echo id, network order */
	__u8 family;     /* 4 or 6 */
	__u8 proto;      /* IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6 */
	__u8 tcp_flags;  /* TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10) */
	__u8 tracked;    /* 1 when conntrack applies (TCP, UDP, ICMP echo) */
	__u32 len;       /* skb->len */
};

#define PR_TCP_FIN 0x01
#define PR_TCP_SYN 0x02
#define PR_TCP_RST 0x04
#define PR_TCP_ACK 0x10

/* Define pr_pull_<name>(): return a pointer to the next header of type T and
 * advance, or NULL when the packet is too short. */
#define PR_DEFINE_PULL(name, T)                                                \
	static __always_inline T *pr_pull_##name(struct pr_cursor *c)          \
	{                                                                      \
		T *h = c->pos;                                                 \
		if ((void *)(h + 1) > c->end)                                  \
			return NULL;                                           \
		c->pos = h + 1;                                                \
		return h;                                                      \
	}

PR_DEFINE_PULL(eth, struct ethhdr)
PR_DEFINE_PULL(ip4, struct iphdr)
PR_DEFINE_PULL(ip6, struct ipv6hdr)
PR_DEFINE_PULL(tcp, struct tcphdr)
PR_DEFINE_PULL(udp, struct udphdr)
PR_DEFINE_PULL(icmp4, struct pr_icmphdr)
PR_DEFINE_PULL(icmp6, struct icmp6hdr)

/* Parse the L4 header at the cursor. Returns PR_PARSE_OK or a reason. */
static __always_inline int pr_parse_l4(struct pr_cursor *c, struct pr_pkt *p)
{
	switch (p->proto) {
	case IPPROTO_TCP: {
		struct tcphdr *th = pr_pull_tcp(c);
		if (!th || th->doff < 5)
			return PR_DROP_MALFORMED;
		p->sport = th->source;
		p->dport = th->dest;
		p->tcp_flags = ((__u8 *)th)[13];
		p->tracked = 1;
		return PR_PARSE_OK;
	}
	case IPPROTO_UDP: {
		struct udphdr *uh = pr_pull_udp(c);
		if (!uh)
			return PR_DROP_MALFORMED;
		p->sport = uh->source;
		p->dport = uh->dest;
		p->tracked = 1;
		return PR_PARSE_OK;
	}
	case IPPROTO_ICMP: {
		struct pr_icmphdr *ih = pr_pull_icmp4(c);
		if (!ih)
			return PR_DROP_MALFORMED;
		switch (ih->type) {
		case PR_ICMP_ECHO:
		case PR_ICMP_ECHOREPLY:
			/* The identifier in both "ports" makes the key symmetric. */
			p->sport = ih->id;
			p->dport = ih->id;
			p->tracked = 1;
			return PR_PARSE_OK;
		case PR_ICMP_DEST_UNREACH:
		case PR_ICMP_TIME_EXCEEDED:
		case PR_ICMP_PARAMETERPROB:
			return PR_PARSE_OK; /* forwarded, not tracked */
		}
		return PR_PASS_ICMP_CTRL;
	}
	case IPPROTO_ICMPV6: {
		struct icmp6hdr *ih = pr_pull_icmp6(c);
		if (!ih)
			return PR_DROP_MALFORMED;
		switch (ih->icmp6_type) {
		case ICMPV6_ECHO_REQUEST:
		case ICMPV6_ECHO_REPLY:
			p->sport = ih->icmp6_identifier;
			p->dport = ih->icmp6_identifier;
			p->tracked = 1;
			return PR_PARSE_OK;
		case ICMPV6_DEST_UNREACH:
		case ICMPV6_PKT_TOOBIG:
		case ICMPV6_TIME_EXCEED:
		case ICMPV6_PARAMPROB:
			return PR_PARSE_OK;
		}
		return PR_PASS_ICMP_CTRL; /* ND, MLD, router messages */
	}
	}
	return PR_PASS_PROTO;
}

static __always_inline int pr_parse_ip4(struct pr_cursor *c, struct pr_pkt *p)
{
	struct iphdr *iph = pr_pull_ip4(c);
	__u32 l3_len = p->len - sizeof(struct ethhdr);
	__u8 first;

	if (!iph || iph->version != 4 || iph->ihl < 5)
		return PR_DROP_MALFORMED;
	/* IPv4 BIG TCP: a GSO packet above 64 KB carries tot_len 0 and its
	 * real length is the skb's (the kernel's iph_totlen()); nothing else
	 * that long can exist, so the length alone identifies it. */
	if (!(iph->tot_len == 0 && l3_len > 0xffff) &&
	    (bpf_ntohs(iph->tot_len) < sizeof(*iph) || bpf_ntohs(iph->tot_len) > l3_len))
		return PR_DROP_MALFORMED;
	if (iph->ihl != 5)
		return PR_PASS_IP_OPTIONS;
	if (iph->frag_off & bpf_htons(PR_IP_MF | PR_IP_OFFSET))
		return PR_PASS_FRAGMENT;
	p->family = 4;
	p->proto = iph->protocol;
	p->saddr[0] = iph->saddr;
	p->daddr[0] = iph->daddr;
	first = ((__u8 *)&iph->daddr)[0];
	if ((first & 0xf0) == 0xe0 || iph->daddr == 0xffffffff || iph->saddr == 0)
		return PR_PASS_NON_UNICAST;
	if (iph->ttl <= 1)
		return PR_PASS_TTL;
	return pr_parse_l4(c, p);
}

static __always_inline int pr_ip6_non_unicast(const __u32 *a)
{
	__u8 b0 = ((const __u8 *)a)[0], b1 = ((const __u8 *)a)[1];

	if (b0 == 0xff)
		return 1; /* multicast */
	if (b0 == 0xfe && (b1 & 0xc0) == 0x80)
		return 1; /* link-local */
	return (a[0] | a[1] | a[2] | a[3]) == 0; /* unspecified */
}

static __always_inline int pr_parse_ip6(struct pr_cursor *c, struct pr_pkt *p)
{
	struct ipv6hdr *ip6 = pr_pull_ip6(c);
	__u32 l3_len = p->len - sizeof(struct ethhdr);

	if (!ip6 || ip6->version != 6)
		return PR_DROP_MALFORMED;
	if (bpf_ntohs(ip6->payload_len) + sizeof(*ip6) > l3_len)
		return PR_DROP_MALFORMED;
	p->family = 6;
	p->proto = ip6->nexthdr;
	__builtin_memcpy(p->saddr, &ip6->saddr, 16);
	__builtin_memcpy(p->daddr, &ip6->daddr, 16);
	if (pr_ip6_non_unicast(p->daddr) || pr_ip6_non_unicast(p->saddr))
		return PR_PASS_NON_UNICAST;
	switch (p->proto) {
	case IPPROTO_HOPOPTS:
	case IPPROTO_ROUTING:
	case IPPROTO_FRAGMENT:
	case IPPROTO_DSTOPTS:
	case IPPROTO_AH:
	case IPPROTO_ESP:
	case 135: /* mobility */
	case 139: /* HIP */
	case 140: /* shim6 */
		return PR_PASS_IPV6_EXTHDR;
	}
	if (ip6->hop_limit <= 1)
		return PR_PASS_TTL;
	return pr_parse_l4(c, p);
}

/* Parse the frame from its linear data. A BPF subprogram, not inlined:
 * pr_parse calls it twice, and inlining both copies (plus what clang then
 * duplicated after them) made the programs 2.3x larger and slower. */
static __attribute__((noinline)) int pr_parse_linear(struct __sk_buff *skb, struct pr_pkt *p)
{
	struct pr_cursor c = {
		.pos = (void *)(long)skb->data,
		.end = (void *)(long)skb->data_end,
	};
	struct ethhdr *eth = pr_pull_eth(&c);

	p->len = skb->len;
	if (!eth)
		return PR_DROP_MALFORMED;
	if (eth->h_proto != bpf_htons(ETH_P_IP) && eth->h_proto != bpf_htons(ETH_P_IPV6))
		return PR_PASS_NOT_IP;
	if (eth->h_dest[0] & 1)
		return PR_PASS_NON_UNICAST; /* L2 multicast/broadcast */
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return pr_parse_ip4(&c, p);
	return pr_parse_ip6(&c, p);
}

/* Parse the frame. Returns PR_PARSE_OK when *p describes a forwardable
 * unicast IPv4/IPv6 TCP/UDP/ICMP packet, otherwise a pass/drop reason.
 *
 * The linear data is tried first: a TCP/GSO skb from a local socket has
 * exactly its headers there (66 bytes for IPv4 TCP with timestamps), and
 * pulling more (a payload slice) costs a head reallocation and copy on
 * every packet. Only when the headers are cut short by a non-linear skb
 * are they pulled into linear data and parsed again. */
static __always_inline int pr_parse(struct __sk_buff *skb, struct pr_pkt *p)
{
	int r = pr_parse_linear(skb, p);

	if (r != PR_DROP_MALFORMED || skb->len <= skb->data_end - skb->data)
		return r;
	if (bpf_skb_pull_data(skb, skb->len < PR_PULL_LEN ? skb->len : PR_PULL_LEN))
		return r;
	__builtin_memset(p, 0, sizeof(*p));
	return pr_parse_linear(skb, p);
}

#endif /* PODROUTER_PARSE_H */
