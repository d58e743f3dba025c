// Package lab builds a small leaf/spine rack out of network namespaces on
// one Linux machine, for `podrouter-lab up|down|status` (cmd/podrouter-lab),
// `make lab` and the end-to-end tests. It owns the namespaces, links, ToR routers, node
// speakers and CNI pods of a lab instance, and removes all of them again.
//
// # Topology
//
// Real L3 leaf/spine: every link is a point-to-point veth pair; there is no
// shared L2 segment anywhere, so no ICMP redirects can arise (ToRs still
// set send_redirects=0).
//
//	tor1:n<n>        <-- veth, /31 + /126 -->  node<n>:up1
//	tor2:n<n>        <-- veth, /31 + /126 -->  node<n>:up2   (Spec.ToRs = 2)
//	node<n>:veth...  <-- CNI ptp veth   -->  pod n<n>p<p>:eth0
//
// Namespaces are <name>-tor<k>, <name>-n<n> and <name>-n<n>p<p>; state
// (configs, pidfiles, logs, CNI config, IPAM and cache) lives in
// /run/podrouter-lab/<name>/{tor<k>,node<n>}. Interface names carry no lab
// name: each namespace has its own (up1, up2 on nodes; n1..n9 on ToRs).
//
// # Addressing (ToR k, node n)
//
//	link IPv4 /31    ToR 192.168.<k>.<2n-2>   node 192.168.<k>.<2n-1>
//	link IPv6 /126   ToR fd00:<k>:<n>::1      node fd00:<k>:<n>::2
//	                 (point-to-point: bgp.autoPeers finds the other end)
//	router ID / lo   ToR 192.168.254.<k>/32 (+ fd00:254::<k>/128)
//	                 node 192.168.255.<n>/32 (not advertised)
//	pod CIDRs        node 10.0.<n>.0/24 and fd00:10:0:<n>::/64
//	ASNs             ToRs 65100, node n 65000+n
//
// Router namespaces forward both families, rp_filter is 0, IPv6 is on and
// DAD is off (link addresses are also added nodad), so addresses are
// usable at once.
//
// # ToRs
//
// Each ToR runs Debian's FRR (zebra + bgpd, + bfdd with Spec.BFD) in its
// namespace with its own pathspace (-N <ns>; /var/run/frr/<ns>,
// /etc/frr/<ns>), configured from
// templates in render.go: separate IPv4 and IPv6 sessions per node in two
// peer-groups, timers 3/9, graceful-restart helper (restart time 120), a
// default-originate down, and explicit eBGP policy: out only 0.0.0.0/0
// (::/0), in only 10.0.0.0/8 ge 24 le 24 (fd00:10::/32 ge 64 le 64). The
// learned pod CIDRs are installed in the ToR's kernel. Query with
// `vtysh -N <name>-tor1 -c 'show bgp summary'`.
//
// # Nodes
//
// Each node runs one BGP speaker, detached (own session), with a pidfile
// and a log in its state directory: `podrouter run --config` (Spec.Speaker
// "podrouter") or BIRD 2 with the same policy and timers ("bird"), used as
// a reference for convergence comparisons.
//
// # Pods
//
// Pods are attached with the real CNI ptp plugin and host-local IPAM
// through libcni, as a container runtime would. The plugin must run in the
// node's namespace (the node is the pod's host): see nsExec in
// cni_linux.go. Down runs CNI DEL before deleting anything.
//
// # Kubernetes
//
// With Spec.Kubernetes the lab runs a real cluster around the rack (see
// kube.go for the layout): etcd, kube-apiserver, kube-controller-manager
// (node IPAM, EndpointSlices) and kube-scheduler in ToR 1's namespace,
// credentials from an in-process CA (kube_pki.go), Nodes registered by the
// lab, podrouter in Kubernetes mode writing the pods' conflist from
// spec.podCIDRs, Pod objects with real addresses and Ready status, the
// echo and dns Services, and kube-proxy (iptables or nftables) in every
// node (kube_linux.go, kube_workloads_linux.go). RunBackend (backend.go)
// is the server in every pod; DialIn (netns_linux.go) connects from
// inside a namespace, as a client there would.
//
// # Teardown
//
// Teardown/Down find everything by name, not by memory of what Up did, so
// they also clean a lab whose Up crashed halfway: every process inside one
// of the lab's namespaces or started with one of its config files or FRR
// pathspaces, the namespaces, FRR's pathspace directories, the pods'
// /etc/netns directories, the lab's bpffs
// (mounted at <statedir>/bpffs, nodes pin under bpffs/node<n>) and the
// state directory. Up calls
// Teardown first, so Up twice in a row works.
//
// # Convergence measurement
//
// MeasureConvergence kills node 1's speaker (SIGKILL), flushes its routes
// on the ToRs by bouncing node 1's sessions administratively (needed when
// graceful restart keeps them as stale), restarts the speaker and times
// until every ToR has installed 10.0.1.0/24. See its doc for what the
// figure includes and its resolution.
//
// # Real nodes (Spec.Kubelets)
//
// With Kubernetes and Kubelets every node is a Kubernetes node of its own:
// containerd + runc + the kubelet in the node's network namespace and a
// mount + UTS namespace held by a holder process (noderuntime.go,
// node_runtime_linux.go: own /run, /etc/cni/net.d, /var/lib/cni, bpffs,
// cgroup, hostname), kube-proxy, and nothing of podrouter's until the
// overlay (Spec.Overlay, deploy/lab) is applied with kubectl. Images come
// from archives imported into each node's containerd (Spec.Images; the
// pause image is the sandbox image); nothing is pulled. The data of the
// node runtimes lives under Spec.DataRoot (/var/lib/podrouter-lab/<name>);
// Teardown kills what is left in the lab's cgroup, removes the cgroups and
// the data, and restores the kernel settings the kubelets changed once no
// lab kubelet is left on the machine (sysctl_linux.go). workload_linux.go
// runs the echo Deployment and reaches into pods through the node's
// containerd (the images have no shell).
//
// Owns: the lab's namespaces, processes and files (and libcni: the lab is
// not linked into the shipped podrouter binary); with Kubernetes, the
// lab's control plane, its PKI and its objects (client-go, as a harness).
//
// Imports (podrouter): k8s, k8s/apply, deploy/kubernetes.
package lab
