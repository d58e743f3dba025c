package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/podrouter/podrouter/api"
	"github.com/podrouter/podrouter/lab"
)

// TestKubeletLab runs podrouter the way a cluster runs it: three lab nodes
// are real Kubernetes nodes (containerd + runc + kubelet + kube-proxy
// each; control plane in the ToR), podrouter's image is the one `make
// image` built, imported into every node's containerd, and podrouter is
// installed by `kubectl apply -k deploy/lab` and nothing else. Then, as an
// operator would and checking what an operator would look at:
//
//   - late pod CIDRs: the controller-manager allocates them only after
//     podrouter runs on every node; the same pods pick them up (no
//     restart), advertise them to the FRR ToR and write the conflist;
//   - the DaemonSet's pods run unprivileged with exactly the manifest's
//     capabilities, and are Ready by their probes;
//   - a Deployment placed by the scheduler gets addresses from containerd's
//     CNI call; its pods reach each other across nodes through the fast
//     path, and a Service through kube-proxy;
//   - inspect: kubectl exec ds/podrouter -- podrouter status; kubectl logs;
//   - upgrade: kubectl rollout restart under 100/s pings and TCP streams;
//   - drain: kubectl drain withdraws the node's pod CIDRs at the ToR,
//     uncordon brings them back;
//   - uninstall: kubectl delete -k leaves every node as before the install.
func TestKubeletLab(t *testing.T) {
	requireLab(t)
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"kubelet", "kube-apiserver", "kubectl"} {
		if _, err := os.Stat(filepath.Join(repo, "bin", b)); err != nil {
			t.Fatalf("bin/%s missing: run `make kube` (make test does)", b)
		}
	}
	images := buildLabImages(t, repo)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	l := upKubeletLab(t, ctx, repo, images)
	cs, err := l.KubeClient()
	if err != nil {
		t.Fatal(err)
	}
	clusterUp := time.Now()
	before := map[int]string{}
	for n := 1; n <= 3; n++ {
		before[n] = nodeState(t, l, n)
	}
	kubectl := func(args ...string) string {
		t.Helper()
		out, err := l.Kubectl(ctx, args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	overlay := filepath.Join(repo, "deploy", "lab")

	// Install, while no Node has a pod CIDR yet.
	kubectl("apply", "-k", overlay)
	waitFor(t, "podrouter running on every node", 2*time.Minute, func() (bool, string) {
		pods := podrouterPods(t, cs)
		running := 0
		for _, p := range pods {
			if p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil {
				running++
			}
		}
		return running == 3, fmt.Sprintf("%d of 3 podrouter pods running", running)
	})
	first := map[types.UID]int32{}
	for _, p := range podrouterPods(t, cs) {
		first[p.UID] = p.Status.ContainerStatuses[0].RestartCount
	}

	t.Run("late pod CIDRs", func(t *testing.T) {
		if err := l.StartNodeIPAM(ctx); err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
		defer wcancel()
		if err := l.WaitDaemonSet(wctx); err != nil {
			t.Fatal(err)
		}
		if err := l.WaitReady(wctx); err != nil {
			t.Fatal(err)
		}
		for _, p := range podrouterPods(t, cs) {
			rc, ok := first[p.UID]
			if !ok || p.Status.ContainerStatuses[0].RestartCount != rc {
				t.Errorf("%s on %s: not the pod that ran before the pod CIDRs came (or restarted: %d -> %d)",
					p.Name, p.Spec.NodeName, rc, p.Status.ContainerStatuses[0].RestartCount)
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	dsReady := time.Since(clusterUp)
	t.Logf("cluster up -> DaemonSet Ready (pod CIDRs allocated after podrouter started): %s", dsReady.Round(100*time.Millisecond))

	t.Run("privileges and probes", func(t *testing.T) {
		want := capMask("CAP_NET_ADMIN", "CAP_BPF", "CAP_PERFMON", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE")
		for _, p := range podrouterPods(t, cs) {
			c := p.Spec.Containers[0]
			sc := c.SecurityContext
			if sc == nil || sc.Privileged == nil || *sc.Privileged || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: securityContext %+v", p.Name, sc)
			}
			if !podReady(&p) || c.ReadinessProbe == nil || c.LivenessProbe == nil {
				t.Errorf("%s: not Ready by probes", p.Name)
			}
			pid, err := l.PodPID(ctx, &p)
			if err != nil {
				t.Fatal(err)
			}
			st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err != nil {
				t.Fatal(err)
			}
			for _, field := range []string{"CapEff", "CapPrm", "CapBnd"} {
				if got := procField(string(st), field); got != want {
					t.Errorf("%s (%s): %s %016x, want exactly the manifest's caps %016x", p.Name, p.Spec.NodeName, field, got, want)
				}
			}
		}
	})

	t.Run("pod CIDRs at the ToR and in the conflist", func(t *testing.T) {
		for n := 1; n <= 3; n++ {
			cidrs := l.NodePodCIDRs(n)
			for _, p := range cidrs {
				if !torHas(t, l, 1, p) {
					t.Errorf("tor1 lacks %s of node%d", p, n)
				}
			}
			b, err := os.ReadFile(filepath.Join(l.Spec.NodeRuntime(n).CNIConfDir(), "10-podrouter.conflist"))
			if err != nil {
				t.Fatalf("node%d conflist: %v", n, err)
			}
			for _, p := range cidrs {
				if !strings.Contains(string(b), `"`+p.String()+`"`) {
					t.Errorf("node%d conflist lacks %s:\n%s", n, p, b)
				}
			}
		}
	})

	// Ordinary pods, placed by the scheduler, addressed by containerd's CNI
	// call with podrouter's conflist.
	echo, err := l.DeployEcho(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byNode := map[string][]*corev1.Pod{}
	for i := range echo {
		p := &echo[i]
		byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], p)
		n := lab.NodeIndex(p.Spec.NodeName)
		ips := lab.PodIPs(p)
		if len(ips) != 2 || !l.NodePodCIDRs(n)[0].Contains(ips[0]) || !l.NodePodCIDRs(n)[1].Contains(ips[1]) {
			t.Errorf("pod %s on %s: addresses %v, not from the node's pod CIDRs %v", p.Name, p.Spec.NodeName, ips, l.NodePodCIDRs(n))
		}
	}
	if len(byNode) != 3 {
		t.Fatalf("echo pods on %d nodes, want 3: %v", len(byNode), byNode)
	}
	a, b, c := byNode["node1"][0], byNode["node2"][0], byNode["node3"][0]
	waitFor(t, "first cross-node pod ping", time.Minute, func() (bool, string) {
		out, err := l.PodExec(ctx, a, "ping", "-c", "1", "-W", "1", lab.PodIPs(b)[0].String())
		return err == nil, out
	})
	t.Logf("cluster up -> first cross-node pod ping: %s", time.Since(clusterUp).Round(100*time.Millisecond))

	t.Run("cross-node pod traffic through the fast path", func(t *testing.T) {
		for n := 1; n <= 3; n++ {
			st := podrouterStatus(t, l, n)
			if st.FastPath.Mode != api.ModeEBPF || len(st.FastPath.FromEndpoint) != len(byNode[lab.NodeName(n)]) {
				t.Errorf("node%d fast path: mode %s, from-endpoint on %v (want the %d echo pods' veths)", n, st.FastPath.Mode,
					st.FastPath.FromEndpoint, len(byNode[lab.NodeName(n)]))
			}
		}
		fwd := podrouterForwarded(t, l, 2)
		for _, src := range []*corev1.Pod{a, c} {
			for _, dst := range lab.PodIPs(b) {
				if out, err := l.PodExec(ctx, src, "ping", "-c", "5", "-i", "0.05", "-W", "1", dst.String()); err != nil {
					t.Errorf("ping %s -> %s (%s): %v\n%s", src.Name, b.Name, dst, err, out)
				}
			}
		}
		if got := podrouterForwarded(t, l, 2) - fwd; got < 20 {
			t.Errorf("node2's fast path forwarded %d packets of 40 pings", got)
		}
	})

	t.Run("Service through kube-proxy", func(t *testing.T) {
		svc, err := cs.CoreV1().Services(lab.KubeNamespace).Get(ctx, "echo", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ip := range svc.Spec.ClusterIPs {
			seen := map[string]bool{}
			for i := 0; i < 30; i++ {
				out, err := l.PodExec(ctx, a, "curl", "-sS", "--max-time", "3", "http://"+netip.AddrPortFrom(netip.MustParseAddr(ip), 80).String()+"/")
				if err != nil {
					t.Errorf("curl %s from %s: %v", ip, a.Name, err)
					continue
				}
				seen[strings.Fields(out)[0]] = true
			}
			if len(seen) < 4 {
				t.Errorf("Service %s: answered by %d backends %v in 30 requests", ip, len(seen), seen)
			}
		}
	})

	t.Run("inspect", func(t *testing.T) {
		out := kubectl("-n", "podrouter", "exec", "ds/podrouter", "--", "podrouter", "status")
		for _, want := range []string{"established", "fast path active", "Pod CIDRs:"} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl exec ds/podrouter -- podrouter status lacks %q:\n%s", want, out)
			}
		}
		t.Logf("kubectl -n podrouter exec ds/podrouter -- podrouter status\n%s", out)
		logs := kubectl("-n", "podrouter", "logs", "ds/podrouter", "--tail", "200")
		if !strings.Contains(logs, "podrouter started") {
			t.Errorf("kubectl logs ds/podrouter lacks the start line:\n%s", tailLines(logs, 10))
		}
		t.Logf("kubectl get nodes,pods -A -o wide\n%s", kubectl("get", "nodes,pods", "-A", "-o", "wide"))
	})

	t.Run("upgrade under traffic", func(t *testing.T) {
		upgrade(t, l, cs, kubectl, a, b, c)
	})

	t.Run("drain and uncordon", func(t *testing.T) {
		node2 := l.NodePodCIDRs(2)
		kubectl("drain", "node2", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout", "90s")
		waitFor(t, "node2's pod CIDRs withdrawn at the ToR", time.Minute, func() (bool, string) {
			return !torHas(t, l, 1, node2[0]) && !torHas(t, l, 1, node2[1]), "still there"
		})
		if got := podrouterStatus(t, l, 2).Drain; got == "" {
			t.Errorf("node2 status shows no drain")
		}
		kubectl("uncordon", "node2")
		waitFor(t, "node2's pod CIDRs back at the ToR", time.Minute, func() (bool, string) {
			return torHas(t, l, 1, node2[0]) && torHas(t, l, 1, node2[1]), "not yet"
		})
	})

	t.Run("uninstall", func(t *testing.T) {
		kubectl("-n", lab.KubeNamespace, "delete", "deployment", "echo", "--wait=true", "--timeout", "90s")
		waitFor(t, "echo pods gone", 2*time.Minute, func() (bool, string) {
			pl, err := cs.CoreV1().Pods(lab.KubeNamespace).List(ctx, metav1.ListOptions{})
			return err == nil && len(pl.Items) == 0, fmt.Sprintf("%v", err)
		})
		kubectl("delete", "-k", overlay, "--wait=true", "--timeout", "120s")
		waitFor(t, "podrouter pods gone", 2*time.Minute, func() (bool, string) {
			pl, err := cs.CoreV1().Pods("podrouter").List(ctx, metav1.ListOptions{})
			return err == nil && len(pl.Items) == 0, fmt.Sprintf("%v", err)
		})
		for n := 1; n <= 3; n++ {
			if after := nodeState(t, l, n); after != before[n] {
				t.Errorf("node%d is not as before the install:\n--- before\n%s\n--- after\n%s", n, before[n], after)
			}
		}
	})
}

// buildLabImages builds podrouter's image, the pause image and the lab
// workload image with make, into a directory of the test's.
func buildLabImages(t *testing.T, repo string) []string {
	t.Helper()
	dir := t.TempDir()
	start := time.Now()
	out, err := exec.Command("make", "-C", repo, "image", "pause-image", "lab-image", "RELEASE_DIR="+dir).CombinedOutput()
	if err != nil {
		t.Fatalf("make image pause-image lab-image: %v\n%s", err, out)
	}
	t.Logf("images built in %s", time.Since(start).Round(100*time.Millisecond))
	return []string{filepath.Join(dir, "podrouter-image.tar"), filepath.Join(dir, "pause-image.tar"), filepath.Join(dir, "lab-image.tar")}
}

func upKubeletLab(t *testing.T, ctx context.Context, repo string, images []string) *lab.Lab {
	t.Helper()
	name := fmt.Sprintf("k%03d", rand.IntN(1000))
	spec := lab.Spec{Name: name, Kubernetes: true, Kubelets: true, DeferNodeIPAM: true, Images: images,
		PodrouterBin: podrouterBin, KubeBinDir: filepath.Join(repo, "bin")}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	start := time.Now()
	l, err := lab.Up(ctx, spec, log)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Logf("lab up (control plane, 3 nodes registered by their kubelets): %s", time.Since(start).Round(100*time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			var b strings.Builder
			if err := l.Status(context.Background(), &b); err != nil {
				fmt.Fprintf(&b, "status: %v\n", err)
			}
			t.Logf("lab status at failure:\n%s", b.String())
			for n := 1; n <= 3; n++ {
				r := l.Spec.NodeRuntime(n)
				kl, _ := os.ReadFile(filepath.Join(r.Dir, "kubelet.log")) // best effort, for the report
				t.Logf("node%d kubelet log (tail):\n%s", n, tailLines(string(kl), 15))
			}
		}
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer dcancel()
		if err := l.Down(dctx); err != nil {
			t.Errorf("lab down: %v", err)
		}
		if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), name+"-") {
			t.Errorf("namespaces left after lab down:\n%s", out)
		}
		if left, _ := filepath.Glob("/sys/fs/cgroup/*/podrouter-lab-" + name); len(left) > 0 {
			t.Errorf("cgroups left after lab down: %v", left)
		}
		if _, err := os.Stat(filepath.Join(lab.DefaultDataRoot, name)); err == nil {
			t.Errorf("data directory left after lab down")
		}
	})
	return l
}

func podrouterPods(t *testing.T, cs kubernetes.Interface) []corev1.Pod {
	t.Helper()
	pl, err := cs.CoreV1().Pods("podrouter").List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=podrouter"})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range pl.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// podrouterPod is the podrouter pod on node n.
func podrouterPod(t *testing.T, l *lab.Lab, n int) string {
	t.Helper()
	cs, err := l.KubeClient()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range podrouterPods(t, cs) {
		if p.Spec.NodeName == lab.NodeName(n) {
			return p.Name
		}
	}
	t.Fatalf("no podrouter pod on node%d", n)
	return ""
}

// podrouterStatus is `kubectl exec <podrouter on node n> -- podrouter
// status -o json`.
func podrouterStatus(t *testing.T, l *lab.Lab, n int) api.Status {
	t.Helper()
	var st api.Status
	podrouterJSON(t, l, n, &st, "status", "-o", "json")
	return st
}

func podrouterJSON(t *testing.T, l *lab.Lab, n int, v any, args ...string) {
	t.Helper()
	argv := append([]string{"-n", "podrouter", "exec", podrouterPod(t, l, n), "--", "podrouter"}, args...)
	out, err := l.Kubectl(context.Background(), argv...)
	if err == nil {
		err = json.Unmarshal([]byte(out), v)
	}
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

// podrouterForwarded sums node n's fast path fwd-* counters (`podrouter
// bpf stats` in its pod).
func podrouterForwarded(t *testing.T, l *lab.Lab, n int) uint64 {
	t.Helper()
	var cs []api.Counter
	podrouterJSON(t, l, n, &cs, "bpf", "stats", "-o", "json")
	var sum uint64
	for _, c := range cs {
		if strings.HasPrefix(c.Reason, "fwd-") {
			sum += c.Packets
		}
	}
	return sum
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// capMask is the capability bit set of names (linux/capability.h).
func capMask(names ...string) uint64 {
	bits := map[string]uint{"CAP_NET_BIND_SERVICE": 10, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_PERFMON": 38, "CAP_BPF": 39}
	var m uint64
	for _, n := range names {
		m |= 1 << bits[n]
	}
	return m
}

// procField parses a hex field ("CapEff:\t...") of /proc/<pid>/status.
func procField(status, field string) uint64 {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err == nil {
				return n
			}
		}
	}
	return ^uint64(0)
}
