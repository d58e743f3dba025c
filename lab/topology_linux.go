package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

const netnsDir = "/run/netns"

// Sysctls of every router namespace (ToRs and nodes). Defaults are set
// before any link exists so that new interfaces inherit them.
var routerSysctls = []string{
	"net.ipv4.ip_forward=1",
	"net.ipv6.conf.all.forwarding=1",
	"net.ipv6.conf.default.forwarding=1",
	"net.ipv4.conf.all.rp_filter=0",
	"net.ipv4.conf.default.rp_filter=0",
	"net.ipv6.conf.all.disable_ipv6=0",
	"net.ipv6.conf.default.disable_ipv6=0",
	"net.ipv6.conf.all.accept_dad=0",
	"net.ipv6.conf.default.accept_dad=0",
	// A link set down and up again keeps its IPv6 addresses, as a node's
	// network configuration would restore them; otherwise the session
	// over it could never come back in the link-failure tests.
	"net.ipv6.conf.all.keep_addr_on_down=1",
	"net.ipv6.conf.default.keep_addr_on_down=1",
}

// ToRs share no L2 segment with anything, but a router must never send
// redirects, so say so.
var torSysctls = []string{
	"net.ipv4.conf.all.send_redirects=0",
	"net.ipv4.conf.default.send_redirects=0",
}

var podSysctls = []string{
	"net.ipv6.conf.all.disable_ipv6=0",
	"net.ipv6.conf.default.disable_ipv6=0",
	"net.ipv6.conf.all.accept_dad=0",
	"net.ipv6.conf.default.accept_dad=0",
}

func addNS(ctx context.Context, ns string, sysctls []string) error {
	if _, err := run(ctx, nil, "ip", "netns", "add", ns); err != nil {
		return err
	}
	if _, err := Exec(ctx, ns, append([]string{"sysctl", "-q", "-w"}, sysctls...)...); err != nil {
		return err
	}
	_, err := run(ctx, nil, "ip", "-n", ns, "link", "set", "lo", "up")
	return err
}

// ipBatch runs `ip -n ns -batch -` with one command per line.
func ipBatch(ctx context.Context, ns string, lines []string) error {
	_, err := run(ctx, []byte(strings.Join(lines, "\n")+"\n"), "ip", "-n", ns, "-batch", "-")
	return err
}

// buildTopology creates the ToR and node namespaces and the point-to-point
// links between them (see doc.go for the addressing plan).
func (l *Lab) buildTopology(ctx context.Context) error {
	s := l.Spec
	for k := 1; k <= s.ToRs; k++ {
		if err := addNS(ctx, s.ToRNS(k), append(append([]string{}, routerSysctls...), torSysctls...)); err != nil {
			return err
		}
	}
	for n := 1; n <= s.Nodes; n++ {
		if err := addNS(ctx, s.NodeNS(n), routerSysctls); err != nil {
			return err
		}
	}
	torCmds := make([][]string, s.ToRs+1)
	nodeCmds := make([][]string, s.Nodes+1)
	for k := 1; k <= s.ToRs; k++ {
		torCmds[k] = append(torCmds[k],
			fmt.Sprintf("addr add %s/32 dev lo", ToRRouterID(k)),
			fmt.Sprintf("addr add %s/128 dev lo", ToRLoopback6(k)))
		for n := 1; n <= s.Nodes; n++ {
			up, down := fmt.Sprintf("up%d", k), fmt.Sprintf("n%d", n)
			// Both ends are created directly in their namespaces, so names
			// never meet in the root namespace (parallel labs).
			if _, err := run(ctx, nil, "ip", "link", "add", up, "netns", s.NodeNS(n), "type", "veth",
				"peer", "name", down, "netns", s.ToRNS(k)); err != nil {
				return err
			}
			t4, n4 := LinkV4(k, n)
			t6, n6 := LinkV6(k, n)
			torCmds[k] = append(torCmds[k],
				fmt.Sprintf("addr add %s/31 dev %s", t4, down),
				fmt.Sprintf("addr add %s/126 dev %s nodad", t6, down),
				fmt.Sprintf("link set %s up", down))
			nodeCmds[n] = append(nodeCmds[n],
				fmt.Sprintf("addr add %s/31 dev %s", n4, up),
				fmt.Sprintf("addr add %s/126 dev %s nodad", n6, up),
				fmt.Sprintf("link set %s up", up))
		}
	}
	if s.ToRs == 2 {
		if _, err := run(ctx, nil, "ip", "link", "add", "t2", "netns", s.ToRNS(1), "type", "veth",
			"peer", "name", "t1", "netns", s.ToRNS(2)); err != nil {
			return err
		}
		for k := 1; k <= 2; k++ {
			dev := fmt.Sprintf("t%d", 3-k)
			torCmds[k] = append(torCmds[k],
				fmt.Sprintf("addr add %s/31 dev %s", InterToRV4(k), dev),
				fmt.Sprintf("addr add %s/64 dev %s nodad", InterToRV6(k), dev),
				fmt.Sprintf("link set %s up", dev))
		}
	}
	for n := 1; n <= s.Nodes; n++ {
		nodeCmds[n] = append(nodeCmds[n], fmt.Sprintf("addr add %s/32 dev lo", NodeRouterID(n)))
	}
	for k := 1; k <= s.ToRs; k++ {
		if err := ipBatch(ctx, s.ToRNS(k), torCmds[k]); err != nil {
			return err
		}
	}
	for n := 1; n <= s.Nodes; n++ {
		if err := ipBatch(ctx, s.NodeNS(n), nodeCmds[n]); err != nil {
			return err
		}
	}
	return nil
}

// addPods creates every pod namespace and attaches it with CNI ADD, as a
// container runtime would.
func (l *Lab) addPods(ctx context.Context) error {
	s := l.Spec
	for n := 1; n <= s.Nodes; n++ {
		if err := s.writeCNIConf(n); err != nil {
			return err
		}
		pn, err := s.loadPodNet(n)
		if err != nil {
			return err
		}
		for p := 1; p <= s.PodsPerNode; p++ {
			if err := addNS(ctx, s.PodNS(n, p), podSysctls); err != nil {
				return err
			}
			if err := s.addPod(ctx, pn, n, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// labNamespaces lists the namespaces that belong to the lab called name.
func labNamespaces(name string) ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	re := nsRE(name)
	var out []string
	for _, e := range ents {
		if re.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

var podNSRE = regexp.MustCompile(`-n([0-9]+)p([0-9]+)$`)

// Teardown removes everything a lab called spec.Name may have made under
// spec.StateRoot, whether or not Up finished: CNI DEL for each pod whose
// node still exists, every process of the lab (pidfiles, FRR pathspaces,
// anything inside its namespaces), the namespaces, FRR's pathspace
// directories, BPF pin directories and the state directory. It is
// idempotent and reports what it could not remove.
func Teardown(ctx context.Context, spec Spec, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return teardown(ctx, spec, logger.With("lab", spec.Name))
}

// teardown is Teardown with a logger already scoped to the lab.
func teardown(ctx context.Context, spec Spec, log *slog.Logger) error {
	s := spec.WithDefaults()
	if !nameRE.MatchString(s.Name) {
		return fmt.Errorf("lab name %q: invalid", s.Name)
	}
	if saved, err := readSpec(s.StateRoot, s.Name); err == nil {
		// `lab down` knows only the name: where the pods' conflists are
		// depends on how the lab was made.
		s.Kubernetes = saved.Kubernetes
		s.Kubelets, s.DataRoot = saved.Kubelets, saved.DataRoot
	}
	var errs []error
	nss, err := labNamespaces(s.Name)
	if err != nil {
		return err
	}
	present := map[string]bool{}
	for _, ns := range nss {
		present[ns] = true
	}

	// 1. CNI DEL, as a runtime would before deleting the sandbox. Pods whose
	// node is gone need none: their veth died with the namespace. A failed
	// DEL is only logged: deleting the namespaces and the state directory
	// below removes the veths and the IPAM state all the same.
	for _, ns := range nss {
		m := podNSRE.FindStringSubmatch(ns)
		if m == nil {
			continue
		}
		var n, p int
		fmt.Sscan(m[1], &n) //nolint:errcheck // regexp guarantees digits
		fmt.Sscan(m[2], &p) //nolint:errcheck
		if !present[s.NodeNS(n)] {
			continue
		}
		pn, err := s.loadPodNet(n)
		if err != nil {
			log.Debug("no cni config, skipping del", "pod", ns, "err", err)
			continue
		}
		if err := s.delPod(ctx, pn, n, p); err != nil {
			log.Warn("cni del failed", "pod", ns, "err", err)
		}
	}

	// 2. Processes.
	var nsPaths, frrNames []string
	for _, ns := range nss {
		nsPaths = append(nsPaths, filepath.Join(netnsDir, ns))
	}
	torRE := regexp.MustCompile(`^` + regexp.QuoteMeta(s.Name) + `-tor[0-9]+$`)
	for _, dir := range []string{frrRunDir, frrEtcDir} {
		ents, _ := os.ReadDir(dir) // missing dir: nothing to do
		for _, e := range ents {
			if torRE.MatchString(e.Name()) {
				frrNames = append(frrNames, e.Name())
			}
		}
	}
	for _, ns := range nss {
		if torRE.MatchString(ns) {
			frrNames = append(frrNames, ns)
		}
	}
	pids := ownedProcs(nsPaths, s.StateDir(), frrNames)
	if len(pids) > 0 {
		log.Debug("stopping processes", "pids", pids)
	}
	if err := terminate(ctx, pids, 3*time.Second); err != nil {
		errs = append(errs, err)
	}

	// 2b. Node runtimes: the containers (found by cgroup: their network
	// namespaces are not the lab's), cgroups, sysctls, data.
	if err := teardownKubelets(ctx, s, log); err != nil {
		errs = append(errs, err)
	}

	// 3. Namespaces: pods, then nodes, then ToRs.
	sort.Slice(nss, func(i, j int) bool { return nsRank(nss[i]) < nsRank(nss[j]) })
	for _, ns := range nss {
		if _, err := run(ctx, nil, "ip", "netns", "delete", ns); err != nil {
			errs = append(errs, err)
		}
	}

	// 4. Directories.
	for _, n := range frrNames {
		errs = append(errs, removeFRRDirs(n))
	}
	errs = append(errs, removeEtcNetns(s.Name))
	errs = append(errs, s.unmountBPFFS())
	errs = append(errs, os.RemoveAll(s.StateDir()))

	// 5. Verify.
	if left, _ := labNamespaces(s.Name); len(left) > 0 {
		errs = append(errs, fmt.Errorf("namespaces left: %v", left))
	}
	if left := ownedProcs(nil, s.StateDir(), frrNames); len(left) > 0 {
		errs = append(errs, fmt.Errorf("processes left: %v", left))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("teardown lab %s: %w", s.Name, err)
	}
	if len(nss)+len(pids) > 0 {
		log.Info("lab torn down", "namespaces", len(nss), "processes", len(pids))
	}
	return nil
}

func nsRank(ns string) int {
	switch {
	case podNSRE.MatchString(ns):
		return 0
	case strings.Contains(ns, "-tor"):
		return 2
	default:
		return 1
	}
}

// removeEtcNetns removes the /etc/netns/<ns> directories of the lab's
// namespaces (the pods' resolv.conf with Spec.Kubernetes).
func removeEtcNetns(name string) error {
	ents, err := os.ReadDir(etcNetnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	re := nsRE(name)
	var errs []error
	for _, e := range ents {
		if re.MatchString(e.Name()) {
			errs = append(errs, os.RemoveAll(filepath.Join(etcNetnsDir, e.Name())))
		}
	}
	return errors.Join(errs...)
}
