package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/podrouter/podrouter/lab"
)

// cmdLab drives the network-namespace lab: podrouter lab up|down|status.
func cmdLab(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError{"lab: want up, down or status"}
	}
	if args[0] == "backend" {
		return labBackend(ctx, args[1:])
	}
	fs := flag.NewFlagSet("lab "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	name := fs.String("name", "lab", "lab instance name (prefixes every namespace)")
	tors := fs.Int("tors", 1, "number of ToR routers (1 or 2; 2 gives ECMP on the nodes)")
	nodes := fs.Int("nodes", 3, "number of nodes")
	pods := fs.Int("pods", 2, "pods per node")
	speaker := fs.String("speaker", lab.SpeakerPodrouter, "node BGP speaker: podrouter or bird")
	datapath := fs.Bool("datapath", false, "enable podrouter's eBPF fast path in the nodes")
	password := fs.String("md5-password", "", "TCP-MD5 password on every node session")
	gtsm := fs.Bool("gtsm", false, "GTSM (TTL security, RFC 5082) on every node session")
	bfd := fs.Bool("bfd", false, "BFD (300ms x 3) on every node session: bfdd on the ToRs, bgp.peers[].bfd on the nodes")
	kube := fs.Bool("kubernetes", false, "run a Kubernetes control plane in the ToR, podrouter in Kubernetes mode, kube-proxy in every node, Services backed by the pods (needs `make kube`)")
	proxyMode := fs.String("proxy-mode", "", "kube-proxy mode with --kubernetes: iptables (default) or nftables")
	kubelets := fs.Bool("kubelets", false, "with --kubernetes: containerd and a real kubelet in every node (make image pause-image); podrouter only from --overlay")
	images := fs.String("images", "", "with --kubelets: image archives imported into every node, comma-separated (must include pause-image.tar)")
	overlay := fs.String("overlay", "", "with --kubelets: kustomization to install with `kubectl apply -k` once the Nodes are registered (deploy/lab)")
	runs := fs.Int("runs", 10, "converge: measurement rounds per speaker")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{err.Error()}
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	switch args[0] {
	case "up":
		l, err := lab.Up(ctx, lab.Spec{
			Name: *name, ToRs: *tors, Nodes: *nodes, PodsPerNode: *pods,
			Speaker: *speaker, Datapath: *datapath, Password: *password, GTSM: *gtsm, BFD: *bfd,
			Kubernetes: *kube, ProxyMode: *proxyMode,
			Kubelets: *kubelets, Images: absPaths(*images), Overlay: absPath(*overlay),
		}, log)
		if err != nil {
			return err
		}
		return l.Status(ctx, os.Stdout)
	case "down":
		return lab.Down(ctx, *name)
	case "converge":
		return labConverge(ctx, log, *runs)
	case "status":
		l, err := lab.Load(*name)
		if err != nil {
			return err
		}
		return l.WithLogger(log).Status(ctx, os.Stdout)
	}
	return usageError{"lab: want up, down, status or converge"}
}

// labBackend runs the lab backend server (lab.RunBackend) in a lab pod;
// the Kubernetes lab starts it.
func labBackend(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("lab backend", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	name := fs.String("name", "", "name every answer starts with (the pod's)")
	httpPort := fs.Int("http-port", lab.BackendHTTPPort, "HTTP port")
	echoPort := fs.Int("echo-port", lab.BackendEchoPort, "TCP and UDP echo port")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return lab.RunBackend(ctx, lab.BackendConfig{Name: *name, HTTPPort: *httpPort, EchoPort: *echoPort}, log)
}

// labConverge measures, side by side in one run, how long node1's speaker
// takes from process start until the ToR has installed its pod CIDR:
// podrouter in one lab, BIRD in another, rounds interleaved. It also reports
// the speakers' resident memory.
func labConverge(ctx context.Context, log *slog.Logger, runs int) error {
	if runs < 1 {
		return usageError{"--runs must be at least 1"}
	}
	labs := map[string]*lab.Lab{}
	defer func() {
		for _, l := range labs {
			if err := l.Down(context.Background()); err != nil {
				log.Error("lab down", "lab", l.Spec.Name, "err", err)
			}
		}
	}()
	speakers := []string{lab.SpeakerPodrouter, lab.SpeakerBIRD}
	for _, sp := range speakers {
		l, err := lab.Up(ctx, lab.Spec{Name: "cv" + sp[:1], Speaker: sp}, log)
		if err != nil {
			return err
		}
		labs[sp] = l
	}
	res := map[string][]time.Duration{}
	for i := 0; i < runs; i++ {
		for _, sp := range speakers {
			d, err := labs[sp].MeasureConvergence(ctx, 1)
			if err != nil {
				return fmt.Errorf("%s round %d: %w", sp, i+1, err)
			}
			res[sp] = append(res[sp], d...)
		}
	}
	fmt.Printf("\nnode speaker start -> pod CIDR installed at the FRR ToR (%d rounds, interleaved; vtysh polled every 20 ms)\n\n", runs)
	fmt.Println("| speaker | min | median | max | RSS of node2's speaker |")
	fmt.Println("|---|---|---|---|---|")
	for _, sp := range speakers {
		ds := slices.Clone(res[sp])
		slices.Sort(ds)
		rss := "?"
		if pid, err := labs[sp].SpeakerPID(2); err == nil {
			rss = vmRSS(pid)
		}
		fmt.Printf("| %s | %s | %s | %s | %s |\n", sp, ds[0].Round(time.Millisecond), ds[len(ds)/2].Round(time.Millisecond),
			ds[len(ds)-1].Round(time.Millisecond), rss)
	}
	return nil
}

// vmRSS reads a process's resident set size from /proc.
func vmRSS(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// absPaths splits a comma-separated list of paths and makes each absolute.
func absPaths(list string) []string {
	var out []string
	for _, p := range strings.Split(list, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, absPath(p))
		}
	}
	return out
}

// absPath makes p absolute ("" stays ""); on error it returns p, which
// the lab then refuses as relative.
func absPath(p string) string {
	if p == "" {
		return ""
	}
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}
