package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"syscall"

	"github.com/podrouter/podrouter/lab"
)

// Service modes: a Kubernetes lab (control plane in the ToR, kube-proxy in
// iptables mode in every node) with four nodes, one pod each. Nodes 1 and
// 2 run the fast path, nodes 3 and 4 do not (podrouter restarted with it
// off). Service "bench-fast" selects the pod on node 2, "bench-kernel" the
// pod on node 4; the clients (pods on nodes 1 and 3) reach them through
// their ClusterIPs, so every packet is translated by kube-proxy's rules.

// benchPorts are the ports sockperf (11111) and iperf3 (5201, TCP control
// and TCP or UDP data) use.
var benchPorts = []lab.ServicePort{
	{Name: "sockperf-udp", Port: 11111, Protocol: "UDP"},
	{Name: "sockperf-tcp", Port: 11111, Protocol: "TCP"},
	{Name: "iperf", Port: 5201, Protocol: "TCP"},
	{Name: "iperf-udp", Port: 5201, Protocol: "UDP"},
}

// serviceLab brings up the Kubernetes lab and returns modes (e) and (f).
func serviceLab(ctx context.Context, bin string, log *slog.Logger) (*lab.Lab, []*mode, error) {
	l, err := lab.Up(ctx, lab.Spec{
		Name: fmt.Sprintf("bs%03d", rand.IntN(1000)), Nodes: 4, PodsPerNode: 1, PodrouterBin: bin,
		Datapath: true, Kubernetes: true, ProxyMode: lab.ProxyModeIPTables,
	}, log)
	if err != nil {
		return nil, nil, err
	}
	// Nodes 3 and 4: the kernel path (the config is re-rendered at start).
	l.Spec.Datapath = false
	for n := 3; n <= 4; n++ {
		if err := l.StopSpeaker(ctx, n, syscall.SIGTERM); err != nil {
			return l, nil, err
		}
		if err := l.StartSpeaker(ctx, n); err != nil {
			return l, nil, err
		}
	}
	if err := l.WaitReady(ctx); err != nil {
		return l, nil, err
	}
	ips := map[string]netip.Addr{}
	for name, node := range map[string]int{"bench-fast": 2, "bench-kernel": 4} {
		if ips[name], err = l.ExposePod(ctx, name, node, 1, benchPorts); err != nil {
			return l, nil, err
		}
	}
	return l, []*mode{
		{key: "e", name: "pod→ClusterIP kernel path", lab: l, client: l.PodNS(3, 1), server: l.PodNS(4, 1), dst: ips["bench-kernel"],
			bind: podIP(ctx, l, 4)},
		{key: "f", name: "pod→ClusterIP podrouter fast path", lab: l, client: l.PodNS(1, 1), server: l.PodNS(2, 1), dst: ips["bench-fast"],
			bind: podIP(ctx, l, 2), fastPathNS: l.NodeNS(1), pinDir: l.Spec.NodePinDir(1), anyCounter: true},
	}, nil
}

func podIP(ctx context.Context, l *lab.Lab, n int) netip.Addr {
	a, _ := l.PodIP(ctx, n, 1, lab.IPv4) // checked by the first measurement: sockperf cannot bind an invalid address
	return a
}

// printServiceTable prints the Service modes with the per-round ratio of
// the fast path to the kernel path.
func printServiceTable(kernel, fast *mode, res map[string][]sample) {
	fmt.Println("\nThrough a ClusterIP (kube-proxy iptables mode), backend on another node:")
	fmt.Println()
	fmt.Println("| metric | mode | min | median | max | fast/kernel (paired) |")
	fmt.Println("|---|---|---:|---:|---:|---:|")
	for _, mt := range metrics {
		for _, m := range []*mode{kernel, fast} {
			var vals, ratio []float64
			for i, s := range res[m.key] {
				v := mt.get(s)
				vals = append(vals, v)
				if k := mt.get(res[kernel.key][i]); k != 0 {
					ratio = append(ratio, v/k)
				}
			}
			fmt.Printf("| %s | (%s) %s | "+mt.f+" | "+mt.f+" | "+mt.f+" | %.2f |\n",
				mt.name, m.key, m.name, slices.Min(vals), median(vals), slices.Max(vals), median(ratio))
		}
	}
}
