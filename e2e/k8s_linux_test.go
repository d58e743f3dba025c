package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/podrouter/podrouter/k8s/k8stest"
	"github.com/podrouter/podrouter/lab"
)

// TestKubernetesLab runs the three lab daemons in Kubernetes mode against a
// real kube-apiserver: pod CIDRs come from the Node objects (the rendered
// configs have none), a cordon withdraws the node's pod CIDRs from the FRR
// ToR and an uncordon brings them back, the PodrouterReady condition turns
// True and the CNI conflist is written from the Node's CIDRs.
//
// etcd and the apiserver run in the ToR's namespace on its loopback address
// 192.168.254.1, which every node reaches through its default route — the
// lab's stand-in for a management network.
func TestKubernetesLab(t *testing.T) {
	requireLab(t)
	l := upLab(t, 1)
	ctx := context.Background()
	api := k8stest.StartWith(t, k8stest.Options{NetNS: l.ToRNS(1), BindIP: lab.ToRRouterID(1).String()})
	cs := api.Client(t)
	for n := 1; n <= 3; n++ {
		var cidrs []string
		for _, p := range lab.PodCIDRs(n) {
			cidrs = append(cidrs, p.String())
		}
		api.CreateNode(t, lab.NodeName(n), cidrs)
	}
	kubeconfig := filepath.Join(l.StateDir(), "kubeconfig")
	api.Kubeconfig(t, kubeconfig)

	// Move every node to Kubernetes mode: SIGTERM (graceful restart: the
	// ToR keeps the routes meanwhile) and start with the rendered
	// Kubernetes-mode config.
	l.Spec.Kubeconfig = kubeconfig
	for n := 1; n <= 3; n++ {
		if err := l.StopSpeaker(ctx, n, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := l.StartSpeaker(ctx, n); err != nil {
			t.Fatal(err)
		}
		conf, err := os.ReadFile(filepath.Join(l.StateDir(), lab.NodeName(n), "podrouter.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(conf), "podCIDRs") || !strings.Contains(string(conf), "kubernetes:") {
			t.Fatalf("node%d config is not in Kubernetes mode:\n%s", n, conf)
		}
	}
	for n := 1; n <= 3; n++ {
		waitFor(t, lab.NodeName(n)+" advertising its Node's pod CIDRs", 60*time.Second, func() (bool, string) {
			out, _ := l.Exec(ctx, l.NodeNS(n), podrouterBin, "status", "-o", "json", "--socket", socket(l, n))
			var st struct{ Advertised []string }
			_ = json.Unmarshal([]byte(out), &st) // an empty answer just means not yet
			return len(st.Advertised) == 2, out
		})
	}
	for n := 1; n <= 3; n++ {
		for _, p := range lab.PodCIDRs(n) {
			if !torHas(t, l, 1, p) {
				t.Errorf("ToR lacks %s in Kubernetes mode", p)
			}
		}
	}

	t.Run("PodrouterReady condition", func(t *testing.T) {
		waitFor(t, "PodrouterReady=True on node1", 60*time.Second, func() (bool, string) {
			node, err := cs.CoreV1().Nodes().Get(ctx, "node1", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			for _, c := range node.Status.Conditions {
				if c.Type == "PodrouterReady" {
					return c.Status == corev1.ConditionTrue, c.Reason + ": " + c.Message
				}
			}
			return false, "no condition yet"
		})
	})

	t.Run("CNI conflist from the Node's pod CIDRs", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(l.StateDir(), "node2", "cni-k8s", "10-podrouter.conflist"))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range lab.PodCIDRs(2) {
			if !strings.Contains(string(b), p.String()) {
				t.Errorf("conflist lacks %s:\n%s", p, b)
			}
		}
	})

	t.Run("cordon withdraws, uncordon re-advertises", func(t *testing.T) {
		patch := func(unschedulable bool) {
			body := `{"spec":{"unschedulable":false}}`
			if unschedulable {
				body = `{"spec":{"unschedulable":true}}`
			}
			if _, err := cs.CoreV1().Nodes().Patch(ctx, "node2", types.MergePatchType, []byte(body), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		patch(true)
		waitFor(t, "node2's pod CIDRs withdrawn after cordon", 10*time.Second, func() (bool, string) {
			for _, p := range lab.PodCIDRs(2) {
				if torHas(t, l, 1, p) {
					return false, p.String() + " still at the ToR"
				}
			}
			return true, ""
		})
		t.Logf("cordon: node2's pod CIDRs left the ToR after %s", time.Since(start).Round(time.Millisecond))
		// Sessions and the default route stay while drained.
		if rs, _ := l.KernelRoutes(ctx, l.NodeNS(2), lab.IPv4, "default"); len(rs) != 1 {
			t.Errorf("drained node lost its default route: %+v", rs)
		}
		start = time.Now()
		patch(false)
		waitFor(t, "node2's pod CIDRs back after uncordon", 10*time.Second, func() (bool, string) {
			for _, p := range lab.PodCIDRs(2) {
				if !torHas(t, l, 1, p) {
					return false, p.String() + " not back"
				}
			}
			return true, ""
		})
		t.Logf("uncordon: back at the ToR after %s", time.Since(start).Round(time.Millisecond))
	})

	t.Run("a peers annotation changes the peer set live", func(t *testing.T) {
		peers := func() (string, int) {
			out, _ := l.Exec(ctx, l.NodeNS(3), podrouterBin, "status", "-o", "json", "--socket", socket(l, 3))
			var st struct {
				Peers []struct{ Address, State string }
			}
			_ = json.Unmarshal([]byte(out), &st) // empty: not answered yet
			return out, len(st.Peers)
		}
		annotate := func(v string) {
			body := `{"metadata":{"annotations":{"podrouter.io/peers":null}}}`
			if v != "" {
				b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{"podrouter.io/peers": v}}})
				body = string(b)
			}
			if _, err := cs.CoreV1().Nodes().Patch(ctx, "node3", types.MergePatchType, []byte(body), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		annotate(`[{"address":"192.168.1.99","asn":65199}]`)
		waitFor(t, "node3 has the annotated extra peer", 20*time.Second, func() (bool, string) {
			out, n := peers()
			return n == 3 && strings.Contains(out, "192.168.1.99"), out
		})
		// The sessions with the ToR were not reset by the change.
		for _, f := range lab.PodCIDRs(3) {
			if !torHas(t, l, 1, f) {
				t.Errorf("%s left the ToR when a peer was added", f)
			}
		}
		annotate("")
		waitFor(t, "extra peer gone after the annotation is removed", 20*time.Second, func() (bool, string) {
			out, n := peers()
			return n == 2, out
		})
	})

	// Back to file mode before the lab goes down (the API server goes
	// first in the cleanup order otherwise and the daemons would log).
	l.Spec.Kubeconfig = ""
}
