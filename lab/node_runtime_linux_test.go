//go:build linux

package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/podrouter/podrouter/k8s/k8stest"
)

// requireNodeRuntime skips where a node runtime cannot run at all (not
// root); a missing package or binary fails, with what to install.
func requireNodeRuntime(t *testing.T) (repo string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts containerd and kubelets; skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("node runtimes need root (namespaces, cgroups, containerd)")
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	repo = filepath.Dir(wd)
	for _, b := range append([]string{"etcd"}, nodeRuntimeBinaries...) {
		if _, err := exec.LookPath(b); err != nil {
			t.Fatalf("%s not found: run `make deps`", b)
		}
	}
	if _, err := os.Stat(filepath.Join(repo, "bin", "kubelet")); err != nil {
		t.Fatalf("bin/kubelet missing: run `make kube`")
	}
	return repo
}

// buildImages runs make image and make pause-image into dir.
func buildImages(t *testing.T, repo, dir string) (podrouter, pause string) {
	t.Helper()
	out, err := exec.Command("make", "-C", repo, "image", "pause-image", "RELEASE_DIR="+dir).CombinedOutput()
	if err != nil {
		t.Fatalf("make image pause-image: %v\n%s", err, out)
	}
	return filepath.Join(dir, "podrouter-image.tar"), filepath.Join(dir, "pause-image.tar")
}

// TestNodeRuntimes runs two nodes' runtimes (containerd + kubelet each)
// against a real API server: both register, run a pod with a CNI address
// and a host-network pod, and share nothing: not /run, the CNI
// directories, the bpffs, their cgroups or their hostname. Teardown
// leaves no process, cgroup, mount, directory or changed sysctl.
func TestNodeRuntimes(t *testing.T) {
	repo := requireNodeRuntime(t)
	name := randomName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	imgPodrouter, imgPause := buildImages(t, repo, filepath.Join(tmp, "out"))
	sysBefore := readSysctls(t)

	// A control-plane namespace with a /31 to each node namespace.
	cp := name + "-cp"
	nss := []string{cp, name + "-n1", name + "-n2"}
	for _, ns := range nss {
		if err := addNS(ctx, ns, routerSysctls); err != nil {
			t.Fatal(err)
		}
	}
	stateDir := filepath.Join(tmp, "state")
	dataDir := filepath.Join(tmp, "data")
	cgroup := "/podrouter-lab-" + name
	var rts []NodeRuntime
	t.Cleanup(func() {
		ctx := context.Background()
		var pids []int
		var paths []string
		for _, ns := range nss {
			paths = append(paths, filepath.Join(netnsDir, ns))
		}
		pids = ownedProcs(paths, stateDir, nil)
		if err := terminate(ctx, pids, 3*time.Second); err != nil {
			t.Error(err)
		}
		if err := removeCgroup(ctx, cgroup); err != nil {
			t.Error(err)
		}
		for _, r := range rts {
			if err := releaseKubeletSysctls(r.Dir); err != nil {
				t.Error(err)
			}
		}
		for _, ns := range nss {
			if _, err := run(ctx, nil, "ip", "netns", "delete", ns); err != nil {
				t.Error(err)
			}
		}
		// Nothing left: processes, cgroups, changed sysctls.
		if left := ownedProcs(nil, stateDir, nil); len(left) > 0 {
			t.Errorf("processes left: %v", left)
		}
		if left, _ := filepath.Glob(filepath.Join(cgroupFS, "*", strings.TrimPrefix(cgroup, "/"))); len(left) > 0 {
			t.Errorf("cgroups left: %v", left)
		}
		if after := readSysctls(t); fmt.Sprint(after) != fmt.Sprint(sysBefore) {
			t.Errorf("sysctls before %v, after teardown %v", sysBefore, after)
		}
	})
	for n := 1; n <= 2; n++ {
		ns := nss[n]
		if _, err := run(ctx, nil, "ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", fmt.Sprintf("n%d", n), "netns", cp); err != nil {
			t.Fatal(err)
		}
		if err := ipBatch(ctx, cp, []string{fmt.Sprintf("addr add 198.18.%d.0/31 dev n%d", n, n), fmt.Sprintf("link set n%d up", n)}); err != nil {
			t.Fatal(err)
		}
		if err := ipBatch(ctx, ns, []string{fmt.Sprintf("addr add 198.18.%d.1/31 dev eth0", n), "link set eth0 up",
			fmt.Sprintf("route add 198.18.0.0/16 via 198.18.%d.0", n)}); err != nil {
			t.Fatal(err)
		}
	}
	srv := k8stest.StartWith(t, k8stest.Options{NetNS: cp, BindIP: "198.18.1.0"})
	cs := srv.Client(t)
	if _, err := cs.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(tmp, "kubelet.kubeconfig")
	srv.WriteKubeconfig(t, kubeconfig, srv.Admin)

	start := time.Now()
	for n := 1; n <= 2; n++ {
		r := NodeRuntime{
			Node: NodeName(n), NetNS: nss[n],
			Dir:          filepath.Join(stateDir, NodeName(n)),
			DataDir:      filepath.Join(dataDir, NodeName(n)),
			Cgroup:       cgroup + "/" + NodeName(n),
			SandboxImage: "localhost/podrouter/pause:1",
			Images:       []string{imgPause, imgPodrouter},
			Kubelet: KubeletSpec{
				Bin: filepath.Join(repo, "bin", "kubelet"), Kubeconfig: kubeconfig,
				ClientCAFile: filepath.Join(srv.Dir, "ca.crt"),
				NodeIPs:      []netip.Addr{netip.MustParseAddr(fmt.Sprintf("198.18.%d.1", n))},
			},
		}
		rts = append(rts, r)
		if err := StartNodeRuntime(ctx, r, testLogger(t)); err != nil {
			t.Fatal(err)
		}
		// What podrouter would write from the Node's podCIDRs.
		conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"podrouter","plugins":[{"type":"ptp","ipam":{"type":"host-local","ranges":[[{"subnet":"10.99.%d.0/24"}]]}}]}`, n)
		if err := os.WriteFile(filepath.Join(r.CNIConfDir(), "10-test.conflist"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	waitNodesReady(ctx, t, cs, rts)
	t.Logf("2 node runtimes up, Nodes Ready in %s", time.Since(start).Round(100*time.Millisecond))

	// One pod with a CNI address and one host-network pod per node, from
	// the imported podrouter image (nothing can be pulled).
	for n := 1; n <= 2; n++ {
		for _, hostNet := range []bool{false, true} {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d-host%v", n, hostNet), Namespace: "default"},
				Spec: corev1.PodSpec{
					NodeName: NodeName(n), HostNetwork: hostNet, AutomountServiceAccountToken: new(bool),
					TerminationGracePeriodSeconds: new(int64),
					Containers: []corev1.Container{{Name: "c", Image: "podrouter:latest", ImagePullPolicy: corev1.PullNever,
						Args: []string{"version"}}},
					RestartPolicy: corev1.RestartPolicyNever,
				},
			}
			if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	pods := waitPodsSucceeded(ctx, t, cs, 4)
	for _, p := range pods {
		t.Logf("pod %s on %s: ip %s phase %s", p.Name, p.Spec.NodeName, p.Status.PodIP, p.Status.Phase)
		want := "10.99."
		if p.Spec.HostNetwork {
			want = "198.18."
		}
		if !strings.HasPrefix(p.Status.PodIP, want) {
			t.Errorf("pod %s: IP %q, want %s*", p.Name, p.Status.PodIP, want)
		}
	}

	if _, err := os.Stat("/var/lib/cni/networks/podrouter"); err == nil {
		t.Errorf("host-local wrote the machine's /var/lib/cni")
	}

	// Nothing shared between the nodes.
	seen := map[string]string{}
	for _, r := range rts {
		for _, probe := range [][]string{
			{"stat", "-c", "%d:%i", "/run"}, {"stat", "-c", "%d:%i", "/etc/cni/net.d"}, {"stat", "-c", "%d:%i", "/var/lib/cni"},
			{"stat", "-f", "-c", "%i", "/sys/fs/bpf"}, {"hostname"}, {"readlink", "/proc/self/ns/mnt"},
		} {
			out, err := r.Exec(ctx, probe...)
			if err != nil {
				t.Fatal(err)
			}
			key := strings.Join(probe, " ") + " = " + strings.TrimSpace(out)
			if other, ok := seen[key]; ok {
				t.Errorf("%s and %s share %s", other, r.Node, key)
			}
			seen[key] = r.Node
		}
		// The pods are done and their addresses released; host-local's
		// last reservation stays, in the node's own /var/lib/cni.
		if out, err := r.Exec(ctx, "cat", "/var/lib/cni/networks/podrouter/last_reserved_ip.0"); err != nil || !strings.HasPrefix(out, "10.99.") {
			t.Errorf("%s: host-local state in its own /var/lib/cni: %q %v", r.Node, out, err)
		}
		for _, sub := range []string{"kubepods", "runtime"} {
			if _, err := os.Stat(filepath.Join(cgroupFS, "memory", r.Cgroup, sub)); err != nil {
				t.Errorf("%s: %v", r.Node, err)
			}
		}
	}
}

func waitNodesReady(ctx context.Context, t *testing.T, cs kubernetes.Interface, rts []NodeRuntime) {
	t.Helper()
	err := poll(ctx, 200*time.Millisecond, func() (bool, string, error) {
		for _, r := range rts {
			n, err := cs.CoreV1().Nodes().Get(ctx, r.Node, metav1.GetOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			ready := false
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady {
					ready = c.Status == corev1.ConditionTrue
					if !ready {
						return false, fmt.Sprintf("%s: %s %s", r.Node, c.Reason, c.Message), nil
					}
				}
			}
			if !ready {
				return false, r.Node + " has no Ready condition", nil
			}
		}
		return true, "", nil
	})
	if err != nil {
		for _, r := range rts {
			t.Logf("%s kubelet log:\n%s", r.Node, tail(r.path("kubelet.log"), 30))
			t.Logf("%s containerd log:\n%s", r.Node, tail(r.path("containerd.log"), 10))
		}
		t.Fatal(err)
	}
}

func waitPodsSucceeded(ctx context.Context, t *testing.T, cs kubernetes.Interface, want int) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	err := poll(ctx, 200*time.Millisecond, func() (bool, string, error) {
		l, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		pods = l.Items
		done := 0
		var why []string
		for _, p := range pods {
			if p.Status.Phase == corev1.PodFailed {
				return false, "", fmt.Errorf("pod %s failed: %+v", p.Name, p.Status)
			}
			if p.Status.Phase == corev1.PodSucceeded {
				done++
			} else {
				why = append(why, fmt.Sprintf("%s %s %s", p.Name, p.Status.Phase, p.Status.Message))
			}
		}
		return done == want && len(pods) == want, strings.Join(why, "; "), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pods
}

func readSysctls(t *testing.T) map[string]string {
	t.Helper()
	out, err := readKubeletSysctls()
	if err != nil {
		t.Fatal(err)
	}
	return out
}
