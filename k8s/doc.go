// Package k8s is podrouter's Kubernetes edge adapter. It watches this
// node's Node object (and, of the rest of the cluster, only the
// ServiceCIDR objects: ServiceCIDRs), translates it into
// agent.NodeState and per-node peering overrides, writes the node's CNI
// conflist, reads the BGP MD5 password from one Secret, and reports back:
// the PodrouterReady Node condition and Events on the Node. client-go's
// types never leave this package; callers see agent and net/netip types.
//
// # Node → NodeState
//
//   - PodCIDRs: spec.podCIDRs (spec.podCIDR when that is empty), one per
//     family (dual stack).
//   - Drained: the node is cordoned (spec.unschedulable), or carries the
//     configured drain taint (Config.DrainTaint, matched by key, and by value
//     when written "key=value"), or is labelled
//     node.kubernetes.io/exclude-from-external-load-balancers.
//
// # Per-node peering overrides (schema)
//
//	annotation podrouter.io/asn        local ASN, decimal 1..4294967294
//	                                   (wins over the rack label)
//	label      podrouter.io/rack       rack number N >= 0: local ASN = Config.ASNBase + N,
//	                                   and the ASN of the peers bgp.autoPeers
//	                                   discovers = Config.PeerASNBase + N (needs
//	                                   either base; the label is selectable,
//	                                   e.g. for per-rack rollouts)
//	annotation podrouter.io/peer-asn   ASN of the discovered peers (wins over
//	                                   the rack label)
//	annotation podrouter.io/router-id  BGP router ID (IPv4); default: the
//	                                   node's first IPv4 InternalIP
//	annotation podrouter.io/peers      extra BGP peers, a JSON list:
//	                                   [{"address":"192.0.2.1","asn":65001},
//	                                    {"address":"2001:db8::1","asn":65001}]
//
// for example
//
//	kubectl label node n1 podrouter.io/rack=7
//	kubectl annotate node n1 podrouter.io/peers='[{"address":"192.0.2.1","asn":65001}]'
//
// A change is applied live: extra peers are added or removed without
// touching the other sessions; a new local ASN or router ID restarts the
// daemon's BGP server (every session resets, the kernel keeps the default
// route meanwhile).
//
// A malformed override is not applied: the adapter keeps the last good
// Peering (the NodeState is still updated), logs, and records a Warning
// Event "InvalidPeeringOverride" on the Node naming the key and the problem.
//
// # Reporting
//
// The Node condition PodrouterReady (patched on nodes/status) is True when
// at least one BGP session is established and a default route is installed;
// its reason and message name the sessions, the default route and the
// datapath mode. Events are recorded on the Node when a session comes up or
// goes down, a peer trips its max-prefix limit, a default route podrouter
// did not install appears, the eBPF fast path falls back to the kernel path,
// and the node is drained or undrained. The condition and the health
// Events render the daemon's health.Snapshot (HealthSource).
//
// It talks core/v1 only, over a REST client whose scheme knows core/v1
// (client.go): client-go's clientset and informer factory register every
// API group and would double the daemon's binary. Another API group (say
// networking.k8s.io/v1 ServiceCIDRs) is one AddToScheme and a client of
// its own.
//
// # Services
//
// ServiceCIDRs watches networking.k8s.io/v1 ServiceCIDR objects (its own
// REST client: servicecidr.go) and gives the cluster's Service CIDRs as
// []netip.Prefix, with a kick on every change, for the daemon to merge
// with datapath.passCIDRs (traffic to a ClusterIP must reach the node's
// stack, where kube-proxy translates it). ProbeProxyMode asks the node's
// kube-proxy for its mode (GET http://127.0.0.1:10249/proxyMode);
// ProxyMode.Supported says whether the fast path is correct with it
// (iptables and nftables: yes; ipvs: not supported, it cannot be built or
// tested on this project's kernels).
//
// Owns: client-go (and klog, which client-go logs through), the Node
// informer, the ServiceCIDR informer, the kube-proxy mode probe, the CNI
// conflist, the password Secret, the condition patch and Events. Hands the
// agent its NodeState.
//
// Imports (podrouter): agent, health.
package k8s
