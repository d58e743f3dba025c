package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/podrouter/podrouter/health"
	"github.com/podrouter/podrouter/k8s/k8stest"
	"github.com/podrouter/podrouter/lab"
)

// TestKubernetesLab runs the three lab daemons in Kubernetes mode against a
// real kube-apiserver, each with a token of the podrouter ServiceAccount
// bound to a Pod on its Node (RBAC and the own-node admission policy as
// deployed): pod CIDRs come from the Node objects (the rendered configs
// have none), the peers from bgp.autoPeers (the other end of each uplink's
// /31 and /126; the configs list none), a cordon deprefers then withdraws
// the node's pod CIDRs at the FRR ToR and an uncordon brings them back, a
// rack label moves a node to another ASN, a peers annotation changes the
// peer set, a Secret rotation re-keys TCP-MD5, the PodrouterReady
// condition turns True, Events are recorded and the CNI conflist is
// written from the Node's CIDRs.
//
// etcd and the apiserver run in the ToR's namespace on its loopback address
// 192.168.254.1, which every node reaches through its default route — the
// lab's stand-in for a management network.
func TestKubernetesLab(t *testing.T) {
	requireLab(t)
	l := upLab(t, 1, func(s *lab.Spec) { s.Password = "rotate1" })
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
	// The deployed RBAC: namespace, ServiceAccount, roles, the own-node
	// admission policy. Each daemon gets a token bound to a Pod on its
	// Node, as the kubelet would mint it.
	deploy := filepath.Join("..", "deploy", "kubernetes") // go test runs in e2e/
	api.Apply(t, filepath.Join(deploy, "namespace.yaml"), filepath.Join(deploy, "rbac.yaml"), filepath.Join(deploy, "own-node-policy.yaml"))
	for n := 1; n <= 3; n++ {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "podrouter-" + lab.NodeName(n), Namespace: "podrouter"},
			Spec: corev1.PodSpec{
				NodeName: lab.NodeName(n), ServiceAccountName: "podrouter", HostNetwork: true,
				Containers: []corev1.Container{{Name: "podrouter", Image: "podrouter"}},
			},
		}
		pod, err := cs.CoreV1().Pods("podrouter").Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		api.WriteKubeconfig(t, filepath.Join(l.StateDir(), "kubeconfig-"+lab.NodeName(n)), api.PodTokenConfig(t, pod))
	}
	// The TCP-MD5 password comes from the Secret the Role allows.
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "podrouter-bgp", Namespace: "podrouter"}, Data: map[string][]byte{"password": []byte("rotate1")}}
	if _, err := cs.CoreV1().Secrets("podrouter").Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Move every node to Kubernetes mode: SIGTERM (graceful restart: the
	// ToR keeps the routes meanwhile) and start with the rendered
	// Kubernetes-mode config: peers discovered, deprefer drain.
	const withdrawAfter = 3 * time.Second
	l.Spec.Kubeconfig = filepath.Join(l.StateDir(), "kubeconfig-{node}")
	l.Spec.KubePasswordSecret = "podrouter-bgp"
	l.Spec.AutoPeers = true
	l.Spec.DrainWithdrawAfter = withdrawAfter
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
		if strings.Contains(string(conf), "podCIDRs") || strings.Contains(string(conf), "peers:") ||
			!strings.Contains(string(conf), "kubernetes:") || !strings.Contains(string(conf), "autoPeers:") {
			t.Fatalf("node%d config is not in Kubernetes mode with autoPeers:\n%s", n, conf)
		}
	}
	for n := 1; n <= 3; n++ {
		waitFor(t, lab.NodeName(n)+" advertising its Node's pod CIDRs to its discovered peers", 60*time.Second, func() (bool, string) {
			st, out, _ := readStatus(l, n) // an empty answer just means not yet
			tor4, _ := lab.LinkV4(1, n)
			tor6, _ := lab.LinkV6(1, n)
			up := 0
			for _, p := range st.Peers {
				if p.State == health.SessionEstablished && (p.Address == tor4 || p.Address == tor6) {
					up++
				}
			}
			return len(st.Advertised) == 2 && up == 2 && len(st.Peers) == 2, out
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
		// First the deprefer phase: still advertised, AS path prepended,
		// MED and the GRACEFUL_SHUTDOWN community set.
		v4 := lab.PodCIDRs(2)[0]
		waitFor(t, "node2's pod CIDR depreferred at the ToR after cordon", 10*time.Second, func() (bool, string) {
			p, ok := torPath(t, l, v4)
			return ok && p.ASPath == "65002 65002 65002 65002" && p.MED == 100 && p.Community == "graceful-shutdown", fmt.Sprintf("%+v", p)
		})
		deprefAt := time.Since(start)
		t.Logf("cordon: node2's pod CIDR depreferred at the ToR after %s", deprefAt.Round(time.Millisecond))
		if st, _, err := readStatus(l, 2); err != nil || !strings.HasPrefix(st.Drain, "depreferred") {
			t.Errorf("node2 status during the deprefer phase: drain %q (%v)", st.Drain, err)
		}
		waitFor(t, "node2's pod CIDRs withdrawn after the deprefer phase", withdrawAfter+10*time.Second, func() (bool, string) {
			for _, p := range lab.PodCIDRs(2) {
				if torHas(t, l, 1, p) {
					return false, p.String() + " still at the ToR"
				}
			}
			return true, ""
		})
		if took := time.Since(start); took < withdrawAfter {
			t.Errorf("withdrawn %s after the cordon, before withdrawAfter %s", took, withdrawAfter)
		}
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
			st, out, _ := readStatus(l, 3) // empty: not answered yet
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

	t.Run("a rack label moves a node to another ASN", func(t *testing.T) {
		// The label first (asnBase 65000 + rack 13): node3 restarts its BGP
		// server as AS 65013, which the ToR refuses until it is re-pointed;
		// meanwhile the agent holds node3's default route (it also reaches
		// the API server through it). Then the fabric side: the ToR expects
		// node3 in AS 65013. (The other order drops node3's sessions from
		// the ToR's side first: a reset by the ToR removes the default at
		// once, as a withdrawal, and node3 would not reach the API server to
		// learn its new rack.)
		n4, n6 := lab.LinkAddrNode(1, 3), func() netip.Addr { _, a := lab.LinkV6(1, 3); return a }()
		// node3's default route must stay while its BGP server restarts
		// (the agent holds it): sample the kernel every 100 ms.
		stop := make(chan struct{})
		missing := make(chan int, 1)
		go func() {
			gaps := 0
			for {
				select {
				case <-stop:
					missing <- gaps
					return
				case <-time.After(100 * time.Millisecond):
				}
				if rs, _ := l.KernelRoutes(ctx, l.NodeNS(3), lab.IPv4, "default"); len(rs) == 0 {
					gaps++
				}
			}
		}()
		start := time.Now()
		if _, err := cs.CoreV1().Nodes().Patch(ctx, "node3", types.MergePatchType, []byte(`{"metadata":{"labels":{"podrouter.io/rack":"13"}}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "node3 running as AS 65013", 30*time.Second, func() (bool, string) {
			st, out, err := readStatus(l, 3)
			return err == nil && st.ASN == 65013, fmt.Sprint(err, out)
		})
		if _, err := l.Exec(ctx, l.ToRNS(1), "vtysh", "-N", l.ToRNS(1), "-c", "configure terminal", "-c", "router bgp 65100",
			"-c", "neighbor "+n4.String()+" remote-as 65013", "-c", "neighbor "+n6.String()+" remote-as 65013"); err != nil {
			t.Fatal(err)
		}
		v4 := lab.PodCIDRs(3)[0]
		waitFor(t, "node3's pod CIDR at the ToR from AS 65013", 60*time.Second, func() (bool, string) {
			p, ok := torPath(t, l, v4)
			return ok && p.ASPath == "65013", fmt.Sprintf("%+v", p)
		})
		t.Logf("rack label: node3's pod CIDR back at the ToR from AS 65013 after %s", time.Since(start).Round(time.Millisecond))
		waitFor(t, "node3's IPv6 pod CIDR back", 20*time.Second, func() (bool, string) { return torHas(t, l, 1, lab.PodCIDRs(3)[1]), "" })
		close(stop)
		if gaps := <-missing; gaps != 0 {
			t.Errorf("node3 had no default route in %d samples while its BGP server restarted", gaps)
		}
		if st, _, err := readStatus(l, 3); err != nil || st.ASN != 65013 {
			t.Errorf("node3 status ASN %d (%v), want 65013", st.ASN, err)
		}
	})

	t.Run("Events on the Node", func(t *testing.T) {
		waitFor(t, "node2's Drained, Undrained and BGPSessionUp Events", 20*time.Second, func() (bool, string) {
			evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=node2"})
			if err != nil {
				return false, err.Error()
			}
			seen := map[string]bool{}
			for _, e := range evs.Items {
				// The deprefer drain says so, with its delay.
				seen[e.Reason] = e.Reason != "Drained" || strings.Contains(e.Message, "depreferred over BGP, withdrawn in 3s")
			}
			return seen["Drained"] && seen["Undrained"] && seen["BGPSessionUp"], fmt.Sprint(evs.Items)
		})
	})

	t.Run("Secret rotation re-keys TCP-MD5", func(t *testing.T) {
		// The ToR moves to the new key first (its sessions drop), then the
		// Secret; every node must re-key and come back by itself.
		if _, err := l.Exec(ctx, l.ToRNS(1), "vtysh", "-N", l.ToRNS(1), "-c", "configure terminal", "-c", "router bgp 65100",
			"-c", "neighbor NODES4 password rotate2", "-c", "neighbor NODES6 password rotate2"); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		secret.Data["password"] = []byte("rotate2")
		if _, err := cs.CoreV1().Secrets("podrouter").Update(ctx, secret, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "all node sessions back with the rotated key", 60*time.Second, func() (bool, string) {
			for _, f := range families {
				ss, err := l.ToRSessions(ctx, 1, f)
				if err != nil || len(ss) != 3 {
					return false, fmt.Sprint(ss, err)
				}
				for _, s := range ss {
					if !strings.EqualFold(s.State, "Established") {
						return false, fmt.Sprint(ss)
					}
				}
			}
			return true, ""
		})
		t.Logf("secret rotation: all six sessions re-established with the new key %s after the Secret update", time.Since(start).Round(time.Millisecond))
		// Re-keyed for real: every node's sessions are younger than the
		// rotation (an old session with a stale key would be older).
		for n := 1; n <= 3; n++ {
			st, out, err := readStatus(l, n)
			if err != nil || len(st.Peers) != 2 {
				t.Fatalf("node%d status: %v\n%s", n, err, out)
			}
			for _, p := range st.Peers {
				up, err := time.ParseDuration(p.Uptime)
				if err != nil || p.State != health.SessionEstablished || up > time.Since(start) {
					t.Errorf("node%d peer %s: %s for %s — not re-established after the rotation", n, p.Address, p.State, p.Uptime)
				}
			}
		}
		for n := 1; n <= 3; n++ {
			for _, p := range lab.PodCIDRs(n) {
				if !torHas(t, l, 1, p) {
					// routes may take a moment after Established
					waitFor(t, p.String()+" back at the ToR", 20*time.Second, func() (bool, string) { return torHas(t, l, 1, p), "" })
				}
			}
		}
	})

	// Back to file mode before the lab goes down (the API server goes
	// first in the cleanup order otherwise and the daemons would log).
	l.Spec.Kubeconfig = ""
}

// frrPath is the ToR's best path for one prefix.
type frrPath struct {
	ASPath    string
	MED       int
	Community string
}

// torPath returns ToR 1's best BGP path for p (FRR's view).
func torPath(t *testing.T, l *lab.Lab, p netip.Prefix) (frrPath, bool) {
	t.Helper()
	fam := "ipv4"
	if p.Addr().Is6() {
		fam = "ipv6"
	}
	var out struct {
		Paths []struct {
			ASPath    struct{ String string } `json:"aspath"`
			MED       int                     `json:"metric"`
			Community struct{ String string } `json:"community"`
			BestPath  struct {
				Overall bool `json:"overall"`
			} `json:"bestpath"`
		} `json:"paths"`
	}
	if err := l.VtyshJSON(context.Background(), 1, "show bgp "+fam+" unicast "+p.String()+" json", &out); err != nil {
		t.Logf("tor1 path %s: %v", p, err)
		return frrPath{}, false
	}
	for _, x := range out.Paths {
		if x.BestPath.Overall {
			return frrPath{ASPath: x.ASPath.String, MED: x.MED, Community: x.Community.String}, true
		}
	}
	return frrPath{}, false
}
