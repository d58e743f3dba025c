package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/podrouter/podrouter/api"
	"github.com/podrouter/podrouter/health"
	"github.com/podrouter/podrouter/k8s/k8stest"
)

// TestShippedDaemonSet starts the daemon exactly as deploy/kubernetes
// ships it: the DaemonSet container's args with $(NODE_NAME) expanded as
// the kubelet does, the ConfigMap's config.yaml at its volume mount, the
// in-cluster service account (a token bound to a Pod on the node, as the
// kubelet mints it), the deployed RBAC and own-node admission policy, and
// the DaemonSet's host paths (/run/podrouter, /etc/cni/net.d,
// /sys/fs/bpf) — each a private mount of the daemon's own mount namespace,
// as the kubelet's volumes would be, so nothing on the host is touched.
// Both manifests are read from deploy/kubernetes, never copied, so the
// test follows every change to them.
//
// It checks the two bugs it was written for. The shipped config leaves
// node.name to --node-name: the daemon must start (it exited with
// "node.name: required" when flags were applied after validation). The
// Node gets its spec.podCIDRs after the daemon started: status, the
// advertisement and the eBPF fast path must follow (the datapath found no
// endpoints until a restart when pod CIDRs were frozen at boot).
func TestShippedDaemonSet(t *testing.T) {
	requireLab(t)
	suffix := fmt.Sprintf("%04x", rand.Uint32()&0xffff)
	ns, podNS := "prship-"+suffix, "prshpod-"+suffix
	for _, n := range []string{ns, podNS} {
		run(t, "ip", "netns", "add", n)
	}
	t.Cleanup(func() {
		for _, n := range []string{ns, podNS} {
			exec.Command("ip", "netns", "del", n).Run() //nolint:errcheck // best effort: may be gone
		}
	})
	for _, c := range []string{
		"ip -n " + ns + " link set lo up",
		// The ConfigMap's datapath.uplinks is [eth0].
		"ip -n " + ns + " link add eth0 type veth peer name eth0p",
		"ip -n " + ns + " link set eth0 up",
		"ip -n " + ns + " link set eth0p up",
		// A pod the way CNI ptp makes one, inside the pod CIDR the Node
		// will get: a /32 on both sides, a host route to the pod.
		"ip -n " + ns + " link add vpod type veth peer name eth0 netns " + podNS,
		"ip -n " + ns + " addr add 10.244.7.1/32 dev vpod",
		"ip -n " + ns + " link set vpod up",
		"ip -n " + ns + " route add 10.244.7.10/32 dev vpod scope link",
		"ip -n " + podNS + " addr add 10.244.7.10/32 dev eth0",
		"ip -n " + podNS + " link set eth0 up",
		"ip -n " + podNS + " route add 10.244.7.1 dev eth0 scope link",
		"ip netns exec " + ns + " ping -c 1 -W 2 10.244.7.10", // the pod's MAC in the node's neighbour table
	} {
		run(t, strings.Fields(c)...)
	}

	// The cluster: a real apiserver in the node's namespace (in-cluster
	// config dials 127.0.0.1:6443 there), the deployed RBAC, the password
	// Secret the ConfigMap names, a Node without pod CIDRs yet and the
	// DaemonSet's Pod on it.
	srv := k8stest.StartWith(t, k8stest.Options{NetNS: ns})
	cs := srv.Client(t)
	ctx := context.Background()
	deploy := filepath.Join("..", "deploy", "kubernetes")
	srv.Apply(t, filepath.Join(deploy, "namespace.yaml"), filepath.Join(deploy, "rbac.yaml"), filepath.Join(deploy, "own-node-policy.yaml"))
	shipped, err := k8stest.LoadShipped(deploy)
	if err != nil {
		t.Fatal(err)
	}
	const node = "node1"
	srv.CreateNode(t, node, nil, func(n *corev1.Node) { // the router ID: the first IPv4 InternalIP, as the kubelet reports it
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.77"}}
	})
	if _, err := cs.CoreV1().Secrets("podrouter").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "podrouter-bgp", Namespace: "podrouter"},
		Data:       map[string][]byte{"password": []byte("shipped-secret")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod, err := cs.CoreV1().Pods("podrouter").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "podrouter-" + node, Namespace: "podrouter"},
		Spec: corev1.PodSpec{NodeName: node, ServiceAccountName: "podrouter", HostNetwork: true,
			Containers: []corev1.Container{{Name: shipped.Container.Name, Image: shipped.Container.Image}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sa := srv.PodTokenConfig(t, pod)
	host, err := url.Parse(sa.Host)
	if err != nil {
		t.Fatal(err)
	}

	// The container's files: the ConfigMap at its mount and the service
	// account's token and CA where client-go's in-cluster config reads them.
	stage := t.TempDir()
	files := map[string][]byte{
		"/var/run/secrets/kubernetes.io/serviceaccount/token":  []byte(sa.BearerToken),
		"/var/run/secrets/kubernetes.io/serviceaccount/ca.crt": sa.CAData,
	}
	for p, b := range shipped.Files {
		files[p] = b
	}
	var setup []string
	for p, b := range files {
		src := filepath.Join(stage, "files", strings.ReplaceAll(p, "/", "_"))
		if err := os.MkdirAll(filepath.Dir(src), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(src, b, 0o600); err != nil {
			t.Fatal(err)
		}
		setup = append(setup, fmt.Sprintf("mkdir -p %s && cp %s %s", filepath.Dir(p), src, p))
	}
	if err := os.MkdirAll(filepath.Join(stage, "overlay"), 0o700); err != nil {
		t.Fatal(err)
	}
	// `ip netns exec` gives the daemon a mount namespace of its own (mounts
	// made there do not reach the host): /run a fresh tmpfs, /etc a
	// writable overlay of the host's, /sys/fs/bpf a fresh bpffs.
	script := strings.Join(append([]string{
		"set -e",
		"mount -t tmpfs tmpfs /run",
		fmt.Sprintf("mount -t tmpfs tmpfs %[1]s/overlay && mkdir %[1]s/overlay/up %[1]s/overlay/work", stage),
		fmt.Sprintf("mount -t overlay overlay -o lowerdir=/etc,upperdir=%[1]s/overlay/up,workdir=%[1]s/overlay/work /etc", stage),
		"mount -t bpf bpf /sys/fs/bpf",
		"mkdir -p /etc/cni/net.d /run/podrouter",
	}, append(setup, `exec "$@"`)...), "\n")
	args := shipped.Args(map[string]string{"spec.nodeName": node})
	env := shipped.Env(map[string]string{"spec.nodeName": node})
	daemon := exec.Command("ip", append([]string{"netns", "exec", ns, "sh", "-c", script, "podrouter", podrouterBin}, args...)...)
	daemon.Env = append(os.Environ(), "KUBERNETES_SERVICE_HOST="+host.Hostname(), "KUBERNETES_SERVICE_PORT="+host.Port())
	for k, v := range env {
		daemon.Env = append(daemon.Env, k+"="+v)
	}
	logPath := filepath.Join(stage, "podrouter.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	daemon.Stdout, daemon.Stderr = logf, logf
	exited := make(chan struct{})
	var exitErr error
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { exitErr = daemon.Wait(); close(exited) }()
	t.Cleanup(func() {
		daemon.Process.Signal(syscall.SIGTERM) //nolint:errcheck // may have exited
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			daemon.Process.Kill() //nolint:errcheck // stuck: the test fails on it below
			t.Error("daemon did not exit on SIGTERM within 15s")
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("daemon log (tail):\n%s", tailLines(string(b), 40))
		}
	})
	t.Logf("started %s %s in netns %s", podrouterBin, strings.Join(args, " "), ns)

	// status runs `podrouter status -o json` in the daemon's namespaces.
	status := func() (api.Status, string, error) {
		var st api.Status
		out, err := exec.Command("nsenter", "-t", fmt.Sprint(daemon.Process.Pid), "-m", "-n",
			podrouterBin, "status", "--socket", "/run/podrouter/podrouter.sock", "-o", "json").CombinedOutput()
		if err == nil {
			err = json.Unmarshal(out, &st)
		}
		return st, string(out), err
	}
	alive := func() string {
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("daemon exited (%v) with the shipped ConfigMap and DaemonSet args:\n%s", exitErr, tailLines(string(b), 20))
		default:
		}
		return ""
	}

	waitFor(t, "the daemon serving its local API as "+node, 60*time.Second, func() (bool, string) {
		alive()
		st, out, err := status()
		return err == nil && st.Node == node, out
	})
	waitFor(t, "the PodrouterReady condition on the Node", 60*time.Second, func() (bool, string) {
		alive()
		n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, c := range n.Status.Conditions {
			if c.Type == "PodrouterReady" {
				// No ToR answers at 192.0.2.1: no session, no default.
				return c.Reason == health.ReasonNoSessions, c.Reason + ": " + c.Message
			}
		}
		return false, "no condition yet"
	})
	st, out, err := status()
	if err != nil {
		t.Fatal(err, out)
	}
	if len(st.PodCIDRs) != 0 || st.FastPath.State != health.DatapathActive || slices.Contains(st.FastPath.FromEndpoint, "vpod") ||
		len(st.Peers) != 1 || st.Peers[0].Address.String() != "192.0.2.1" {
		t.Errorf("before the Node has pod CIDRs: %s", out)
	}

	// Kubernetes assigns the pod CIDR now, after the daemon started.
	pods := `{"spec":{"podCIDR":"10.244.7.0/24","podCIDRs":["10.244.7.0/24"]}}`
	if _, err := cs.CoreV1().Nodes().Patch(ctx, node, types.StrategicMergePatchType, []byte(pods), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "status, the advertisement and the fast path following the Node's new pod CIDR", 30*time.Second, func() (bool, string) {
		alive()
		st, out, err := status()
		want := "10.244.7.0/24"
		return err == nil && len(st.PodCIDRs) == 1 && st.PodCIDRs[0].String() == want &&
			len(st.Advertised) == 1 && st.Advertised[0].String() == want &&
			slices.Contains(st.FastPath.FromEndpoint, "vpod"), out
	})
	// The pod's address is in the fast path's endpoint map.
	var eps []api.Endpoint
	out2, err := exec.Command("nsenter", "-t", fmt.Sprint(daemon.Process.Pid), "-m", "-n",
		podrouterBin, "bpf", "endpoint", "list", "-o", "json").CombinedOutput()
	if err == nil {
		err = json.Unmarshal(out2, &eps)
	}
	if err != nil || len(eps) != 1 || eps[0].Address.String() != "10.244.7.10" || eps[0].IfName != "vpod" {
		t.Errorf("endpoint map after the late pod CIDR: %+v (%v)\n%s", eps, err, out2)
	}
}

// run runs a command and fails the test on an error.
func run(t *testing.T, argv ...string) {
	t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}
