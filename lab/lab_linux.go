package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Lab is a running lab instance.
type Lab struct {
	// Spec is the defaulted spec the lab was built from.
	Spec Spec
	log  *slog.Logger
	// podCIDRs are the nodes' pod CIDRs from node IPAM (Spec.Kubernetes).
	podCIDRs map[int][]netip.Prefix
}

const specFile = "lab.json"

// Up builds the lab described by spec: it first tears down any leftover of
// a lab with the same name, and on any failure tears down what it made.
// Unless spec.NoWait, it returns once every ToR has installed every pod
// CIDR and every node has a default route.
func Up(ctx context.Context, spec Spec, logger *slog.Logger) (l *Lab, err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := spec.WithDefaults()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.Speaker == SpeakerPodrouter && s.PodrouterBin == "" {
		if s.PodrouterBin, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("podrouter binary: %w", err)
		}
		s = s.WithDefaults() // the defaults that derive from PodrouterBin
	}
	l = &Lab{Spec: s, log: logger.With("lab", s.Name)}
	if err := teardown(ctx, s, l.log); err != nil {
		return nil, fmt.Errorf("clean up previous lab %s: %w", s.Name, err)
	}
	defer func() {
		if err != nil {
			l.log.Warn("lab up failed, tearing down", "err", err)
			if derr := teardown(context.WithoutCancel(ctx), s, l.log); derr != nil {
				err = errors.Join(err, fmt.Errorf("teardown after failure: %w", derr))
			}
			l = nil
		}
	}()
	start := time.Now()
	if err := os.MkdirAll(s.StateDir(), 0o755); err != nil {
		return l, err
	}
	if err := s.save(); err != nil {
		return l, err
	}
	if err := s.mountBPFFS(); err != nil {
		return l, err
	}
	if err := l.buildTopology(ctx); err != nil {
		return l, err
	}
	for k := 1; k <= s.ToRs; k++ {
		if err := l.startFRR(ctx, k); err != nil {
			return l, err
		}
	}
	if s.Kubelets {
		return l, l.upKubelets(ctx, start)
	}
	if s.Kubernetes {
		// Control plane and Nodes first: podrouter takes its pod CIDRs
		// from the Node and writes the conflist the pods are made with.
		if err := l.startKube(ctx); err != nil {
			return l, err
		}
	} else if !s.Light { // a light lab's nodes have no pods
		if err := l.addPods(ctx); err != nil {
			return l, err
		}
	}
	for n := 1; n <= s.Nodes; n++ {
		if err := l.StartSpeaker(ctx, n); err != nil {
			return l, err
		}
	}
	if s.Kubernetes {
		if err := l.startKubeWorkloads(ctx); err != nil {
			return l, err
		}
	}
	l.log.Info("lab started", "tors", s.ToRs, "nodes", s.Nodes, "speaker", s.Speaker, "elapsed", time.Since(start).Round(time.Millisecond))
	if s.NoWait {
		return l, nil
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := l.WaitReady(wctx); err != nil {
		return l, err
	}
	l.log.Info("lab ready", "elapsed", time.Since(start).Round(time.Millisecond))
	return l, nil
}

// Load returns the lab called name under DefaultStateRoot.
func Load(name string) (*Lab, error) { return LoadFrom(DefaultStateRoot, name) }

// LoadFrom returns the lab called name under stateRoot.
func LoadFrom(stateRoot, name string) (*Lab, error) {
	s, err := readSpec(stateRoot, name)
	if err != nil {
		return nil, err
	}
	l := &Lab{Spec: s, log: slog.New(slog.DiscardHandler)}
	if s.Kubernetes {
		if err := l.loadPodCIDRs(); err != nil {
			return nil, fmt.Errorf("load lab %s: %w", name, err)
		}
	}
	return l, nil
}

// readSpec reads the defaulted spec of the lab called name.
func readSpec(stateRoot, name string) (Spec, error) {
	b, err := os.ReadFile(filepath.Join(stateRoot, name, specFile))
	if err != nil {
		return Spec{}, fmt.Errorf("load lab %s: %w", name, err)
	}
	var s Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return Spec{}, fmt.Errorf("load lab %s: %w", name, err)
	}
	s = s.WithDefaults()
	if s.Name != name {
		return Spec{}, fmt.Errorf("load lab %s: state names lab %q", name, s.Name)
	}
	return s, nil
}

// save writes the spec to the state directory (Load reads it back).
func (s Spec) save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.StateDir(), specFile), b, 0o644)
}

// WithLogger returns a copy of l that logs to logger.
func (l *Lab) WithLogger(logger *slog.Logger) *Lab {
	c := *l
	c.log = logger.With("lab", l.Spec.Name)
	return &c
}

// Down tears the lab down (see Teardown).
func (l *Lab) Down(ctx context.Context) error { return teardown(ctx, l.Spec, l.log) }

// Down tears down the lab called name under DefaultStateRoot.
func Down(ctx context.Context, name string) error {
	return Teardown(ctx, Spec{Name: name}, nil)
}

// StateDir is the lab's state directory.
func (l *Lab) StateDir() string { return l.Spec.StateDir() }

// ToRNS, NodeNS and PodNS name the lab's namespaces (1-based indices).
func (l *Lab) ToRNS(k int) string { return l.Spec.ToRNS(k) }

// NodeNS is node n's namespace.
func (l *Lab) NodeNS(n int) string { return l.Spec.NodeNS(n) }

// PodNS is pod p of node n's namespace.
func (l *Lab) PodNS(n, p int) string { return l.Spec.PodNS(n, p) }

// Exec runs argv in namespace ns (see the package function Exec).
func (l *Lab) Exec(ctx context.Context, ns string, argv ...string) (string, error) {
	return Exec(ctx, ns, argv...)
}

// PodIP returns the address of family f on pod p of node n's eth0.
func (l *Lab) PodIP(ctx context.Context, node, pod int, f Family) (netip.Addr, error) {
	fl := "-4"
	if f == IPv6 {
		fl = "-6"
	}
	out, err := Exec(ctx, l.PodNS(node, pod), "ip", "-j", fl, "addr", "show", "dev", "eth0", "scope", "global")
	if err != nil {
		return netip.Addr{}, err
	}
	var links []struct {
		AddrInfo []struct {
			Local string `json:"local"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return netip.Addr{}, fmt.Errorf("pod %s addresses: %w", l.PodNS(node, pod), err)
	}
	for _, ln := range links {
		for _, a := range ln.AddrInfo {
			if ip, err := netip.ParseAddr(a.Local); err == nil {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("pod %s has no global %s address", l.PodNS(node, pod), f)
}

// Route is a kernel route as `ip -j route` reports it.
type Route struct {
	Type     string `json:"type"` // "" for unicast, "blackhole", ...
	Dst      string `json:"dst"`
	Gateway  string `json:"gateway"`
	Dev      string `json:"dev"`
	Protocol string `json:"protocol"`
	Nexthops []struct {
		Gateway string `json:"gateway"`
		Dev     string `json:"dev"`
	} `json:"nexthops"`
}

// Gateways lists the route's next hops, single or ECMP.
func (r Route) Gateways() []string {
	if r.Gateway != "" {
		return []string{r.Gateway}
	}
	var out []string
	for _, nh := range r.Nexthops {
		out = append(out, nh.Gateway)
	}
	return out
}

// KernelRoutes returns the main-table routes of family f in namespace ns;
// extra arguments filter as in `ip route show` ("default", "proto", "bgp").
func (l *Lab) KernelRoutes(ctx context.Context, ns string, f Family, filter ...string) ([]Route, error) {
	fl := "-4"
	if f == IPv6 {
		fl = "-6"
	}
	out, err := Exec(ctx, ns, append([]string{"ip", "-j", fl, "route", "show"}, filter...)...)
	if err != nil {
		return nil, err
	}
	var rs []Route
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		return nil, fmt.Errorf("routes in %s: %w", ns, err)
	}
	return rs, nil
}

// WaitReady waits until every ToR session is Established, every ToR has
// installed every pod CIDR and every node has a default route of each
// family through every ToR.
func (l *Lab) WaitReady(ctx context.Context) error {
	var want []netip.Prefix
	for n := 1; n <= l.Spec.Nodes; n++ {
		want = append(want, l.NodePodCIDRs(n)...)
	}
	if err := l.WaitToRRoutes(ctx, want); err != nil {
		return err
	}
	return poll(ctx, 100*time.Millisecond, func() (bool, string, error) {
		for n := 1; n <= l.Spec.Nodes; n++ {
			for _, f := range []Family{IPv4, IPv6} {
				rs, err := l.KernelRoutes(ctx, l.NodeNS(n), f, "default")
				if err != nil {
					return false, "", err
				}
				if len(rs) != 1 || len(rs[0].Gateways()) != l.Spec.ToRs {
					return false, fmt.Sprintf("%s %s default routes: %+v", NodeName(n), f, rs), nil
				}
			}
		}
		return true, "", nil
	})
}

// WaitToRRoutes waits until every ToR has installed every prefix in want.
func (l *Lab) WaitToRRoutes(ctx context.Context, want []netip.Prefix) error {
	return poll(ctx, 100*time.Millisecond, func() (bool, string, error) {
		for k := 1; k <= l.Spec.ToRs; k++ {
			have := map[netip.Prefix]bool{}
			for _, f := range []Family{IPv4, IPv6} {
				rs, err := l.ToRRoutes(ctx, k, f)
				if err != nil {
					return false, err.Error(), nil // FRR may still be starting
				}
				for _, p := range rs {
					have[p] = true
				}
			}
			for _, p := range want {
				if !have[p] {
					return false, fmt.Sprintf("tor%d lacks %s (has %v)", k, p, keys(have)), nil
				}
			}
		}
		return true, "", nil
	})
}

// poll calls check every interval until it reports done, fails, or ctx
// ends; the last "why not" goes into the timeout error.
func poll(ctx context.Context, interval time.Duration, check func() (bool, string, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		done, why, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s", ctx.Err(), why)
		case <-t.C:
		}
	}
}

func keys(m map[netip.Prefix]bool) []string {
	var out []string
	for p := range m {
		out = append(out, p.String())
	}
	return out
}

// Status prints what an operator checks: each ToR's BGP summary and BGP
// routes, each node's routing table and each pod's addresses.
func (l *Lab) Status(ctx context.Context, w io.Writer) error {
	var errs []error
	section := func(title, body string, err error) {
		fmt.Fprintf(w, "=== %s\n%s\n", title, strings.TrimRight(body, "\n"))
		if err != nil {
			fmt.Fprintf(w, "error: %v\n", err)
			errs = append(errs, err)
		}
	}
	s := l.Spec
	if s.Kubelets {
		return l.kubeletStatus(ctx, w, section)
	}
	fmt.Fprintf(w, "lab %s: %d ToR(s), %d node(s), %d pod(s)/node, speaker %s, state %s\n",
		s.Name, s.ToRs, s.Nodes, s.PodsPerNode, s.Speaker, s.StateDir())
	for k := 1; k <= s.ToRs; k++ {
		cmds := []string{"show bgp summary", "show ip route bgp", "show ipv6 route bgp"}
		if s.BFD {
			cmds = append(cmds, "show bfd peers brief")
		}
		for _, c := range cmds {
			out, err := l.Vtysh(ctx, k, c)
			section(fmt.Sprintf("%s: vtysh -N %s -c '%s'", ToRName(k), s.ToRNS(k), c), out, err)
		}
	}
	for n := 1; n <= s.Nodes; n++ {
		for _, fl := range []string{"-4", "-6"} {
			out, err := Exec(ctx, s.NodeNS(n), "ip", fl, "route")
			section(fmt.Sprintf("%s: ip netns exec %s ip %s route", NodeName(n), s.NodeNS(n), fl), out, err)
		}
		pid, _ := readPid(l.speakerPidfile(n)) // missing pidfile: shown as 0
		fmt.Fprintf(w, "speaker %s pid %d running=%v\n", s.Speaker, pid, pid > 0 && alive(pid))
		if s.Speaker == SpeakerPodrouter && s.PodrouterBin != "" {
			sock := filepath.Join(l.nodeDir(n), "podrouter.sock")
			out, err := Exec(ctx, s.NodeNS(n), s.PodrouterBin, "status", "--socket", sock)
			section(fmt.Sprintf("%s: ip netns exec %s podrouter status --socket %s", NodeName(n), s.NodeNS(n), sock), out, err)
		}
		if gobgp := l.gobgpCLI(); gobgp != "" && s.Speaker == SpeakerPodrouter {
			for _, args := range [][]string{{"neighbor"}, {"global", "rib", "-a", "ipv4"}, {"global", "rib", "-a", "ipv6"}} {
				argv := append([]string{gobgp, "-p", "50051"}, args...)
				out, err := Exec(ctx, s.NodeNS(n), argv...)
				section(fmt.Sprintf("%s: ip netns exec %s gobgp -p 50051 %s", NodeName(n), s.NodeNS(n), strings.Join(args, " ")), out, err)
			}
		}
	}
	fmt.Fprintf(w, "=== pods\n")
	for n := 1; n <= s.Nodes; n++ {
		for p := 1; p <= s.PodsPerNode; p++ {
			v4, err4 := l.PodIP(ctx, n, p, IPv4)
			v6, err6 := l.PodIP(ctx, n, p, IPv6)
			fmt.Fprintf(w, "%-12s %-15s %s\n", s.PodNS(n, p), v4, v6)
			errs = append(errs, err4, err6)
		}
	}
	if s.Nodes > 1 {
		for _, f := range []Family{IPv4, IPv6} {
			dst, err := l.PodIP(ctx, s.Nodes, s.PodsPerNode, f)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			err = Ping(ctx, s.PodNS(1, 1), dst, 3)
			result := "ok, 3 of 3 answered"
			if err != nil {
				result = "FAILED: " + err.Error()
				errs = append(errs, err)
			}
			fmt.Fprintf(w, "=== cross-node pod ping %s: %s -> %s (%s): %s\n", f, s.PodNS(1, 1), s.PodNS(s.Nodes, s.PodsPerNode), dst, result)
		}
	}
	if s.Kubernetes {
		errs = append(errs, l.kubeStatus(ctx, w, section))
	}
	return errors.Join(errs...)
}

// gobgpCLI finds the stock gobgp CLI: next to the podrouter binary (make
// builds both into bin/), else on PATH; "" when there is none.
func (l *Lab) gobgpCLI() string {
	if l.Spec.PodrouterBin != "" {
		p := filepath.Join(filepath.Dir(l.Spec.PodrouterBin), "gobgp")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, _ := exec.LookPath("gobgp") // absent: the section is skipped
	return p
}
