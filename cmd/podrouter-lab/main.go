package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/podrouter/podrouter/lab"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "podrouter-lab:", err)
		os.Exit(1)
	}
}

// labFlags are the lab's shape, as `up` takes them.
type labFlags struct {
	name, speaker, password, podrouter string
	tors, nodes, pods                  int
	datapath, gtsm, bfd                bool
	kube, kubelets                     bool
	proxyMode, overlay                 string
	images                             []string
}

func newRootCmd() *cobra.Command {
	var f labFlags
	root := &cobra.Command{
		Use:   "podrouter-lab",
		Short: "The network-namespace lab: FRR ToRs, podrouter nodes, CNI pods",
		Long: `podrouter-lab builds a small leaf/spine rack out of network namespaces on
this machine (root): one or two FRR ToRs, nodes running podrouter (or
BIRD), and pods made by the real CNI ptp plugin. Only addresses inside the
lab's namespaces are used; "down" removes everything it made.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
	}
	root.PersistentFlags().StringVar(&f.name, "name", "lab", "lab instance name (prefixes every namespace)")
	up := &cobra.Command{
		Use:   "up",
		Short: "Build the lab (tearing down one of the same name first) and print its status",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			bin, err := podrouterBinary(f.podrouter)
			if err != nil {
				return err
			}
			ctx, stop, log := setup(c)
			defer stop()
			self, err := os.Executable()
			if err != nil {
				return err
			}
			images, err := absPaths(f.images)
			if err != nil {
				return err
			}
			overlay, err := absPaths([]string{f.overlay})
			if err != nil {
				return err
			}
			l, err := lab.Up(ctx, lab.Spec{
				Name: f.name, ToRs: f.tors, Nodes: f.nodes, PodsPerNode: f.pods, PodrouterBin: bin,
				Speaker: f.speaker, Datapath: f.datapath, Password: f.password, GTSM: f.gtsm, BFD: f.bfd,
				Kubernetes: f.kube, ProxyMode: f.proxyMode, BackendCommand: []string{self, "backend"},
				Kubelets: f.kubelets, Images: images, Overlay: overlay[0],
			}, log)
			if err != nil {
				return err
			}
			return l.Status(ctx, c.OutOrStdout())
		},
	}
	fl := up.Flags()
	fl.IntVar(&f.tors, "tors", 1, "number of ToR routers (1 or 2; 2 gives ECMP on the nodes)")
	fl.IntVar(&f.nodes, "nodes", 3, "number of nodes")
	fl.IntVar(&f.pods, "pods", 2, "pods per node")
	fl.StringVar(&f.speaker, "speaker", lab.SpeakerPodrouter, "node BGP speaker: podrouter or bird")
	fl.BoolVar(&f.datapath, "datapath", false, "enable podrouter's eBPF fast path in the nodes")
	fl.StringVar(&f.password, "md5-password", "", "TCP-MD5 password on every node session")
	fl.BoolVar(&f.gtsm, "gtsm", false, "GTSM (TTL security, RFC 5082) on every node session")
	fl.BoolVar(&f.bfd, "bfd", false, "BFD (300ms x 3) on every node session: bfdd on the ToRs, bgp.peers[].bfd on the nodes")
	fl.StringVar(&f.podrouter, "podrouter", "", `podrouter binary the nodes run (default: "podrouter" next to this binary, else from PATH)`)
	fl.BoolVar(&f.kube, "kubernetes", false, "run a Kubernetes control plane in the ToR and kube-proxy in every node (needs `make kube`); without --kubelets: podrouter in Kubernetes mode, Services backed by the lab pods")
	fl.StringVar(&f.proxyMode, "proxy-mode", "", "kube-proxy mode with --kubernetes: iptables (default) or nftables")
	fl.BoolVar(&f.kubelets, "kubelets", false, "with --kubernetes: containerd and a real kubelet in every node; podrouter only from --overlay (make image pause-image)")
	fl.StringSliceVar(&f.images, "images", nil, "with --kubelets: image archives imported into every node (must include pause-image.tar)")
	fl.StringVar(&f.overlay, "overlay", "", "with --kubelets: kustomization installed with `kubectl apply -k` once the Nodes are registered (deploy/lab)")

	down := &cobra.Command{
		Use:   "down",
		Short: "Remove every namespace, process and file of the lab",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop, _ := setup(c)
			defer stop()
			return lab.Down(ctx, f.name)
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Print what an operator checks: ToR tables, node routes, podrouter status, pods",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop, log := setup(c)
			defer stop()
			l, err := lab.Load(f.name)
			if err != nil {
				return err
			}
			return l.WithLogger(log).Status(ctx, c.OutOrStdout())
		},
	}
	var runs int
	converge := &cobra.Command{
		Use:   "converge",
		Short: "Measure control-plane convergence, podrouter vs BIRD, in two labs side by side",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if runs < 1 {
				return errors.New("--runs must be at least 1")
			}
			bin, err := podrouterBinary(f.podrouter)
			if err != nil {
				return err
			}
			ctx, stop, log := setup(c)
			defer stop()
			return labConverge(ctx, c.OutOrStdout(), log, bin, runs)
		},
	}
	converge.Flags().IntVar(&runs, "runs", 10, "measurement rounds per speaker")
	converge.Flags().StringVar(&f.podrouter, "podrouter", "", `podrouter binary (default: "podrouter" next to this binary, else from PATH)`)
	var be lab.BackendConfig
	backend := &cobra.Command{
		Use:   "backend",
		Short: "Serve as the lab backend (HTTP, TCP and UDP echo) in a lab pod; the Kubernetes lab starts it",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop, log := setup(c)
			defer stop()
			return lab.RunBackend(ctx, be, log)
		},
	}
	backend.Flags().StringVar(&be.Name, "name", "", "name every answer starts with (the pod's)")
	backend.Flags().IntVar(&be.HTTPPort, "http-port", lab.BackendHTTPPort, "HTTP port")
	backend.Flags().IntVar(&be.EchoPort, "echo-port", lab.BackendEchoPort, "TCP and UDP echo port")
	root.AddCommand(up, down, status, converge, backend)
	return root
}

func setup(c *cobra.Command) (context.Context, context.CancelFunc, *slog.Logger) {
	ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGINT, syscall.SIGTERM)
	return ctx, stop, slog.New(slog.NewTextHandler(c.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// podrouterBinary resolves the podrouter binary the lab nodes run: the
// flag, else "podrouter" next to this binary (make build puts both in
// bin/), else from PATH.
func podrouterBinary(flag string) (string, error) {
	if flag != "" {
		return filepath.Abs(flag)
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "podrouter")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("podrouter")
	if err != nil {
		return "", errors.New("no podrouter binary next to podrouter-lab or in PATH: run make build, or pass --podrouter")
	}
	return filepath.Abs(p)
}

// labConverge measures, side by side in one run, how long node1's speaker
// takes from process start until the ToR has installed its pod CIDR:
// podrouter in one lab, BIRD in another, rounds interleaved. It also reports
// the speakers' resident memory.
func labConverge(ctx context.Context, out io.Writer, log *slog.Logger, bin string, runs int) error {
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
		l, err := lab.Up(ctx, lab.Spec{Name: "cv" + sp[:1], Speaker: sp, PodrouterBin: bin}, log)
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
	fmt.Fprintf(out, "\nnode speaker start -> pod CIDR installed at the FRR ToR (%d rounds, interleaved; vtysh polled every 20 ms)\n\n", runs)
	fmt.Fprintln(out, "| speaker | min | median | max | RSS of node2's speaker |")
	fmt.Fprintln(out, "|---|---|---|---|---|")
	for _, sp := range speakers {
		ds := slices.Clone(res[sp])
		slices.Sort(ds)
		rss := "?"
		if pid, err := labs[sp].SpeakerPID(2); err == nil {
			rss = lab.ProcRSS(pid)
		}
		fmt.Fprintf(out, "| %s | %s | %s | %s | %s |\n", sp, ds[0].Round(time.Millisecond), ds[len(ds)/2].Round(time.Millisecond),
			ds[len(ds)-1].Round(time.Millisecond), rss)
	}
	return nil
}

// absPaths makes each non-empty path absolute ("" stays "").
func absPaths(ps []string) ([]string, error) {
	out := make([]string, len(ps))
	for i, p := range ps {
		if p == "" {
			continue
		}
		a, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}
