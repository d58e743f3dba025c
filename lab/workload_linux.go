package lab

import (
	"context"
	_ "embed"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Workloads of the lab with real nodes (Spec.Kubelets), and how a test
// reaches into a pod: the image is FROM scratch (no shell, no ping), so
// the host's tools run in the pod's network namespace instead, found
// through the node's containerd, as `crictl inspect` would find it.

//go:embed manifests/echo.yaml
var echoManifest []byte

// EchoManifest is the "echo" Deployment and Service (manifests/echo.yaml).
func EchoManifest() []byte { return echoManifest }

// KubectlApply runs `kubectl apply -f -` with manifest on stdin, as
// cluster admin in ToR 1's namespace.
func (l *Lab) KubectlApply(ctx context.Context, manifest []byte) (string, error) {
	return run(ctx, manifest, "ip", "netns", "exec", l.Spec.ToRNS(1),
		l.Spec.kubeBin("kubectl"), "--kubeconfig", l.Spec.adminKubeconfig(), "apply", "-f", "-")
}

// DeployEcho applies the echo workload and waits until its Deployment has
// every replica ready.
func (l *Lab) DeployEcho(ctx context.Context) ([]corev1.Pod, error) {
	if out, err := l.KubectlApply(ctx, echoManifest); err != nil {
		return nil, fmt.Errorf("apply echo: %w\n%s", err, out)
	}
	return l.WaitDeployment(ctx, KubeNamespace, "echo")
}

// WaitDeployment waits until Deployment name is rolled out with every
// replica ready, and returns its running pods.
func (l *Lab) WaitDeployment(ctx context.Context, namespace, name string) ([]corev1.Pod, error) {
	cs, err := l.KubeClient()
	if err != nil {
		return nil, err
	}
	var pods []corev1.Pod
	err = poll(ctx, 200*time.Millisecond, func() (bool, string, error) {
		d, err := cs.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		st := d.Status
		if d.Generation > st.ObservedGeneration || st.UpdatedReplicas != want || st.ReadyReplicas != want || st.Replicas != want {
			return false, fmt.Sprintf("deployment %s: want %d, updated %d ready %d total %d", name, want, st.UpdatedReplicas, st.ReadyReplicas, st.Replicas), nil
		}
		sel := metav1.FormatLabelSelector(d.Spec.Selector)
		pl, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return false, err.Error(), nil
		}
		pods = pods[:0]
		for _, p := range pl.Items {
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
				pods = append(pods, p)
			}
		}
		return len(pods) == int(want), fmt.Sprintf("deployment %s: %d running pods, want %d", name, len(pods), want), nil
	})
	return pods, err
}

// NodeIndex is n for the node called "node<n>" (0 if it is not one).
func NodeIndex(name string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(name, "node"))
	if err != nil || !strings.HasPrefix(name, "node") || n < 1 || n > 9 {
		return 0
	}
	return n
}

// PodPID returns a host pid in pod's network namespace: its first
// container's task, from its node's containerd.
func (l *Lab) PodPID(ctx context.Context, pod *corev1.Pod) (int, error) {
	n := NodeIndex(pod.Spec.NodeName)
	if n == 0 {
		return 0, fmt.Errorf("pod %s/%s: not on a lab node (%q)", pod.Namespace, pod.Name, pod.Spec.NodeName)
	}
	if len(pod.Status.ContainerStatuses) == 0 {
		return 0, fmt.Errorf("pod %s/%s: no container status yet", pod.Namespace, pod.Name)
	}
	id, ok := strings.CutPrefix(pod.Status.ContainerStatuses[0].ContainerID, "containerd://")
	if !ok {
		return 0, fmt.Errorf("pod %s/%s: container ID %q", pod.Namespace, pod.Name, pod.Status.ContainerStatuses[0].ContainerID)
	}
	out, err := l.Spec.NodeRuntime(n).Exec(ctx, "ctr", "-n", "k8s.io", "task", "ls")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == id && f[2] == "RUNNING" {
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("pod %s/%s: container %.12s has no running task on %s", pod.Namespace, pod.Name, id, pod.Spec.NodeName)
}

// PodExec runs argv, a host program (ping, ip, curl), in pod's network
// namespace and returns its stdout; the error carries stderr.
func (l *Lab) PodExec(ctx context.Context, pod *corev1.Pod, argv ...string) (string, error) {
	pid, err := l.PodPID(ctx, pod)
	if err != nil {
		return "", err
	}
	return run(ctx, nil, "nsenter", append([]string{"-t", strconv.Itoa(pid), "-n", "--"}, argv...)...)
}

// PodCommand is an unstarted command running argv in pod's network
// namespace (for long-running probes whose output is read as it comes).
func (l *Lab) PodCommand(ctx context.Context, pod *corev1.Pod, argv ...string) (*exec.Cmd, error) {
	pid, err := l.PodPID(ctx, pod)
	if err != nil {
		return nil, err
	}
	return exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(pid), "-n", "--"}, argv...)...), nil
}

// PodDial connects to addr from inside pod's network namespace (the
// socket stays there).
func (l *Lab) PodDial(ctx context.Context, pod *corev1.Pod, network, addr string) (net.Conn, error) {
	pid, err := l.PodPID(ctx, pod)
	if err != nil {
		return nil, err
	}
	return DialFromPath(ctx, fmt.Sprintf("/proc/%d/ns/net", pid), network, addr)
}

// PodIPs returns a pod's addresses, IPv4 first.
func PodIPs(pod *corev1.Pod) []netip.Addr {
	var out []netip.Addr
	for _, ip := range pod.Status.PodIPs {
		if a, err := netip.ParseAddr(ip.IP); err == nil {
			out = append(out, a)
		}
	}
	if len(out) == 2 && out[0].Is6() {
		out[0], out[1] = out[1], out[0]
	}
	return out
}
