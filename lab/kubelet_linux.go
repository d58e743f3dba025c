package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/podrouter/podrouter/k8s"
)

// The lab with real nodes (Spec.Kubelets): the control plane of kube.go in
// ToR 1, and in every node kube-proxy, containerd and a kubelet, which
// registers the Node. What a provisioner gives a machine before the
// cluster runs on it, the lab gives each node:
//
//   - a route to the API server's advertised address (ToR 1's loopback)
//     through ToR 1's end of the uplink, proto static. A DaemonSet
//     podrouter reaches the API server through the "kubernetes" Service,
//     which kube-proxy translates to that address: the node needs a way
//     there before podrouter has learned the default route, or podrouter
//     could never start;
//   - the kubelet's --node-labels podrouter.io/rack=<n>: with the overlay's
//     kubernetes.asnBase 65000 that makes node n's ASN 65000+n, what the
//     ToR expects.

// labCgroup is the cgroup of every node runtime of lab name.
func labCgroup(name string) string { return "/podrouter-lab-" + name }

// dataDir is the lab's directory under DataRoot.
func (s Spec) dataDir() string { return filepath.Join(s.DataRoot, s.Name) }

// NodeRuntime is node n's runtime (Spec.Kubelets).
func (s Spec) NodeRuntime(n int) NodeRuntime {
	r := NodeRuntime{
		Node: NodeName(n), NetNS: s.NodeNS(n),
		Dir:          filepath.Join(s.StateDir(), NodeName(n), "runtime"),
		DataDir:      filepath.Join(s.dataDir(), NodeName(n)),
		Cgroup:       labCgroup(s.Name) + "/" + NodeName(n),
		SandboxImage: SandboxImage,
		Images:       s.Images,
		Kubelet: KubeletSpec{
			Bin:          s.kubeBin("kubelet"),
			Kubeconfig:   filepath.Join(s.nodeKubeDir(n), "kubelet.kubeconfig"),
			ClientCAFile: filepath.Join(s.pkiDir(), "ca.crt"),
			NodeIPs:      []netip.Addr{NodeIP(n, IPv4), NodeIP(n, IPv6)},
			Labels:       map[string]string{k8s.LabelRack: strconv.Itoa(n)},
		},
	}
	if underRun(s.StateDir()) {
		r.BindBack = s.StateDir()
	}
	return r
}

// upKubelets is Up's second half with Spec.Kubelets (topology and ToRs are
// up): the control plane, the nodes, and the overlay if there is one.
func (l *Lab) upKubelets(ctx context.Context, start time.Time) error {
	s := l.Spec
	if err := l.startKube(ctx); err != nil {
		return err
	}
	if err := l.startKubelets(ctx); err != nil {
		return err
	}
	l.log.Info("lab started", "tors", s.ToRs, "nodes", s.Nodes, "kubelets", true, "elapsed", time.Since(start).Round(time.Millisecond))
	if s.Overlay == "" || s.NoWait {
		return nil
	}
	if err := l.InstallPodrouter(ctx, s.Overlay, 3*time.Minute); err != nil {
		return err
	}
	l.log.Info("podrouter installed and routing", "elapsed", time.Since(start).Round(time.Millisecond))
	if slices.ContainsFunc(s.Images, func(p string) bool { return filepath.Base(p) == LabImageArchive }) {
		// The lab's workload, as pods made by the kubelets.
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if _, err := l.DeployEcho(wctx); err != nil {
			return fmt.Errorf("echo workload: %w", err)
		}
		l.log.Info("lab ready: echo Deployment running", "elapsed", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// startKubelets brings up every node after the control plane: the route
// to the API server, kube-proxy, containerd and the kubelet; one node at a
// time, each until node IPAM has given its Node pod CIDRs, so that node n
// gets the n-th ranges as in the lab without kubelets.
func (l *Lab) startKubelets(ctx context.Context) error {
	s := l.Spec
	cs, err := l.KubeClient()
	if err != nil {
		return err
	}
	l.podCIDRs = map[int][]netip.Prefix{}
	for n := 1; n <= s.Nodes; n++ {
		tor, _ := LinkV4(1, n)
		if _, err := run(ctx, nil, "ip", "-n", s.NodeNS(n), "route", "add", APIServerIP().String()+"/32",
			"via", tor.String(), "dev", "up1", "proto", "static"); err != nil {
			return err
		}
		if err := l.StartKubeProxy(ctx, n); err != nil {
			return err
		}
		start := time.Now()
		r := s.NodeRuntime(n)
		if err := StartNodeRuntime(ctx, r, l.log); err != nil {
			return err
		}
		if err := l.waitNodeRegistered(ctx, cs, n); err != nil {
			return fmt.Errorf("%w\nkubelet log:\n%s", err, tail(r.path("kubelet.log"), 20))
		}
		l.log.Info("node registered by its kubelet", "node", NodeName(n), "podCIDRs", l.podCIDRs[n],
			"elapsed", time.Since(start).Round(time.Millisecond))
	}
	return l.savePodCIDRs() // empty with DeferNodeIPAM: StartNodeIPAM saves them again
}

// waitNodeRegistered waits (60 s) until node n's Node exists with both pod
// CIDRs (just exists, with DeferNodeIPAM), and records them.
func (l *Lab) waitNodeRegistered(ctx context.Context, cs kubernetes.Interface, n int) error {
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	name := NodeName(n)
	return poll(wctx, 100*time.Millisecond, func() (bool, string, error) {
		node, err := cs.CoreV1().Nodes().Get(wctx, name, metav1.GetOptions{})
		if err != nil {
			return false, fmt.Sprintf("node %s: %v", name, err), nil
		}
		if l.Spec.DeferNodeIPAM {
			return true, "", nil
		}
		ps, err := nodePodCIDRs(node)
		if err != nil {
			return false, "", err
		}
		if len(ps) != 2 {
			return false, fmt.Sprintf("%s spec.podCIDRs %v", name, node.Spec.PodCIDRs), nil
		}
		l.podCIDRs[n] = ps
		return true, "", nil
	})
}

// StartNodeIPAM (Spec.DeferNodeIPAM) restarts the controller-manager with
// node IPAM and waits (60 s) until every Node has its pod CIDRs.
func (l *Lab) StartNodeIPAM(ctx context.Context) error {
	s := l.Spec
	logPath, pidPath := s.controlPlanePaths("kube-controller-manager")
	pid, err := readPid(pidPath)
	if err != nil {
		return err
	}
	if pid > 0 {
		if err := terminate(ctx, []int{pid}, 10*time.Second); err != nil {
			return err
		}
	}
	if _, err := startDetached(s.ToRNS(1), s.controllerManagerArgv(true), logPath, pidPath); err != nil {
		return err
	}
	cs, err := l.KubeClient()
	if err != nil {
		return err
	}
	l.Spec.DeferNodeIPAM = false // from now on Nodes have pod CIDRs
	if l.podCIDRs == nil {
		l.podCIDRs = map[int][]netip.Prefix{}
	}
	for n := 1; n <= s.Nodes; n++ {
		if err := l.waitNodeRegistered(ctx, cs, n); err != nil {
			return fmt.Errorf("node IPAM: %w\n%s", err, tail(logPath, 20))
		}
	}
	if err := l.Spec.save(); err != nil {
		return err
	}
	return l.savePodCIDRs()
}

// InstallPodrouter installs podrouter the only way this lab does: `kubectl
// apply -k` of overlay, as cluster admin, then waits (up to timeout) for
// the DaemonSet to be rolled out on every node and for what it does to
// show: every ToR has every node's pod CIDRs, every node a default route.
func (l *Lab) InstallPodrouter(ctx context.Context, overlay string, timeout time.Duration) error {
	out, err := l.Kubectl(ctx, "apply", "-k", overlay)
	if err != nil {
		return fmt.Errorf("kubectl apply -k %s: %w\n%s", overlay, err, out)
	}
	l.log.Info("applied", "overlay", overlay, "objects", strings.Count(out, "\n"))
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := l.WaitDaemonSet(wctx); err != nil {
		return fmt.Errorf("%w\n%s", err, l.podrouterDiagnostics(ctx))
	}
	if err := l.WaitReady(wctx); err != nil {
		return fmt.Errorf("%w\n%s", err, l.podrouterDiagnostics(ctx))
	}
	return nil
}

// podrouterDiagnostics is what an operator would look at when the
// DaemonSet does not come up: its pods, their events and logs.
func (l *Lab) podrouterDiagnostics(ctx context.Context) string {
	var b strings.Builder
	for _, args := range [][]string{
		{"-n", "podrouter", "get", "pods", "-o", "wide"},
		{"-n", "podrouter", "get", "events", "--sort-by", ".lastTimestamp"},
		{"-n", "podrouter", "logs", "--all-containers", "--prefix", "--tail", "20", "-l", "app.kubernetes.io/name=podrouter"},
		{"-n", "podrouter", "logs", "--all-containers", "--prefix", "--tail", "20", "--previous", "-l", "app.kubernetes.io/name=podrouter"},
	} {
		out, err := l.Kubectl(context.WithoutCancel(ctx), args...)
		fmt.Fprintf(&b, "$ kubectl %s\n%s", strings.Join(args, " "), out)
		if err != nil {
			fmt.Fprintf(&b, "(%v)\n", err)
		}
	}
	return b.String()
}

// WaitDaemonSet waits until podrouter's DaemonSet has an up-to-date, ready
// pod on every node (what `kubectl rollout status` checks).
func (l *Lab) WaitDaemonSet(ctx context.Context) error {
	cs, err := l.KubeClient()
	if err != nil {
		return err
	}
	return poll(ctx, 200*time.Millisecond, func() (bool, string, error) {
		ds, err := cs.AppsV1().DaemonSets("podrouter").Get(ctx, "podrouter", metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		st := ds.Status
		if ds.Generation <= st.ObservedGeneration && st.DesiredNumberScheduled == int32(l.Spec.Nodes) &&
			st.UpdatedNumberScheduled == st.DesiredNumberScheduled && st.NumberReady == st.DesiredNumberScheduled &&
			st.NumberAvailable == st.DesiredNumberScheduled {
			return true, "", nil
		}
		return false, fmt.Sprintf("daemonset podrouter: desired %d updated %d ready %d available %d (generation %d observed %d)",
			st.DesiredNumberScheduled, st.UpdatedNumberScheduled, st.NumberReady, st.NumberAvailable, ds.Generation, st.ObservedGeneration), nil
	})
}

// teardownKubelets removes what the node runtimes of a lab leave once
// their processes are gone (Teardown stops those first): the containers
// (every process left in the lab's cgroup, pods included), the cgroups,
// the lab's use of the kubelet sysctls and the data directory. The nodes'
// mounts went with their mount namespaces.
func teardownKubelets(ctx context.Context, s Spec, log *slog.Logger) error {
	var errs []error
	if err := removeCgroup(ctx, labCgroup(s.Name)); err != nil {
		errs = append(errs, err)
	}
	if err := releaseKubeletSysctlsUnder(s.StateDir()); err != nil {
		errs = append(errs, err)
	}
	root := s.DataRoot
	if root == "" {
		root = DefaultDataRoot
	}
	dir := filepath.Join(root, s.Name)
	if _, err := os.Stat(dir); err == nil {
		log.Debug("removing node runtime data", "dir", dir)
		errs = append(errs, os.RemoveAll(dir))
		_ = os.Remove(root) // only if no other lab's data is there
	}
	return errors.Join(errs...)
}

// kubeletStatus is Status with real nodes: what an operator of such a
// cluster checks. The ToR's BGP view, the Nodes and pods as kubectl shows
// them, podrouter's own status on every node (kubectl exec), each node's
// routes, and a ping between two echo pods on different nodes if the echo
// workload runs.
func (l *Lab) kubeletStatus(ctx context.Context, w io.Writer, section func(title, body string, err error)) error {
	s := l.Spec
	var errs []error
	fmt.Fprintf(w, "lab %s: %d ToR, %d Kubernetes nodes (containerd + kubelet + kube-proxy each), state %s, data %s\n",
		s.Name, s.Nodes, s.Nodes, s.StateDir(), s.dataDir())
	for _, c := range []string{"show bgp summary", "show ip route bgp", "show ipv6 route bgp"} {
		out, err := l.Vtysh(ctx, 1, c)
		section(fmt.Sprintf("%s: vtysh -N %s -c '%s'", ToRName(1), s.ToRNS(1), c), out, err)
		errs = append(errs, err)
	}
	section(fmt.Sprintf("kubernetes control plane (namespace %s, state %s)", s.ToRNS(1), s.kubeDir()), l.controlPlaneStatus(), nil)
	kubectl := fmt.Sprintf("ip netns exec %s %s --kubeconfig %s", s.ToRNS(1), s.kubeBin("kubectl"), s.adminKubeconfig())
	out, err := l.Kubectl(ctx, "get", "nodes,pods", "-A", "-o", "wide")
	section(kubectl+" get nodes,pods -A -o wide", out, err)
	errs = append(errs, err)
	cs, err := l.KubeClient()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	pods, err := cs.CoreV1().Pods("podrouter").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=podrouter"})
	if err != nil {
		errs = append(errs, err)
	} else {
		sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Spec.NodeName < pods.Items[j].Spec.NodeName })
		for _, p := range pods.Items {
			out, err := l.Kubectl(ctx, "-n", "podrouter", "exec", p.Name, "--", "podrouter", "status")
			section(fmt.Sprintf("%s: kubectl -n podrouter exec %s -- podrouter status", p.Spec.NodeName, p.Name), out, err)
			errs = append(errs, err)
		}
	}
	for n := 1; n <= s.Nodes; n++ {
		for _, fl := range []string{"-4", "-6"} {
			out, err := Exec(ctx, s.NodeNS(n), "ip", fl, "route")
			section(fmt.Sprintf("%s: ip netns exec %s ip %s route", NodeName(n), s.NodeNS(n), fl), out, err)
			errs = append(errs, err)
		}
	}
	echo, err := cs.CoreV1().Pods(KubeNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app=echo"})
	if err == nil && len(echo.Items) > 1 {
		a := &echo.Items[0]
		for i := range echo.Items[1:] {
			b := &echo.Items[i+1]
			if b.Spec.NodeName == a.Spec.NodeName || len(PodIPs(b)) == 0 {
				continue
			}
			for _, dst := range PodIPs(b) {
				out, err := l.PodExec(ctx, a, "ping", "-c", "3", "-i", "0.2", "-W", "2", dst.String())
				section(fmt.Sprintf("cross-node pod ping: %s (%s) -> %s (%s, %s)", a.Name, a.Spec.NodeName, b.Name, b.Spec.NodeName, dst), lastLines(out, 2), err)
				errs = append(errs, err)
			}
			break
		}
	}
	return errors.Join(errs...)
}
