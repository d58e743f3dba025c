package k8s_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/podrouter/podrouter/agent"
	"github.com/podrouter/podrouter/health"
	"github.com/podrouter/podrouter/k8s"
	"github.com/podrouter/podrouter/k8s/k8stest"
)

// sink records what the adapter hands over. It fails the test if a state
// for another node ever arrives.
type sink struct {
	t        testing.TB
	node     string
	mu       sync.Mutex
	states   []agent.NodeState
	peerings []k8s.Peering
	pws      []string
}

func (s *sink) SetNodeState(ns agent.NodeState) {
	if ns.Name != s.node {
		s.t.Errorf("sink got the state of node %q, want only %q", ns.Name, s.node)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states = append(s.states, ns)
}

func (s *sink) SetPeering(p k8s.Peering) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peerings = append(s.peerings, p)
}

func (s *sink) SetPassword(pw string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pws = append(s.pws, pw)
}

func (s *sink) last() (agent.NodeState, k8s.Peering, string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ns agent.NodeState
	var p k8s.Peering
	var pw string
	if len(s.states) > 0 {
		ns = s.states[len(s.states)-1]
	}
	if len(s.peerings) > 0 {
		p = s.peerings[len(s.peerings)-1]
	}
	if len(s.pws) > 0 {
		pw = s.pws[len(s.pws)-1]
	}
	return ns, p, pw, len(s.peerings)
}

// steered is a HealthSource the test steers.
type steered struct {
	mu sync.Mutex
	h  health.Snapshot
}

func (h *steered) Snapshot(context.Context) health.Snapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.h
}

// established and down are peers in those states.
func established(a string) health.Peer {
	return health.Peer{Address: netip.MustParseAddr(a), State: health.SessionEstablished}
}
func down(a string) health.Peer {
	return health.Peer{Address: netip.MustParseAddr(a), State: health.SessionActive}
}

// reconciled is a snapshot after one reconcile with these peers and n
// IPv4 default next hops.
func reconciled(n int, peers ...health.Peer) health.Snapshot {
	s := health.Snapshot{Reconcile: health.Reconcile{Count: 1}, Peers: peers}
	for range n {
		s.DefaultV4.Installed = append(s.DefaultV4.Installed, netip.MustParseAddr("192.0.2.1"))
	}
	return s
}

func (h *steered) set(v health.Snapshot) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.h = v
}

func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within 20s; last: %s", what, last)
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func patchNode(t *testing.T, c kubernetes.Interface, name, patch string) {
	t.Helper()
	if _, err := c.CoreV1().Nodes().Patch(context.Background(), name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("patch node %s with %s: %v", name, patch, err)
	}
}

// nodeEvent finds an Event on node with reason whose message contains sub.
func nodeEvent(c kubernetes.Interface, node, reason, sub string) (bool, string) {
	evs, err := c.CoreV1().Events("").List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Node,involvedObject.name=" + node + ",reason=" + reason,
	})
	if err != nil {
		return false, err.Error()
	}
	var msgs []string
	for _, e := range evs.Items {
		if strings.Contains(e.Message, sub) {
			return true, ""
		}
		msgs = append(msgs, e.Message)
	}
	return false, fmt.Sprintf("%d %s events: %q", len(evs.Items), reason, msgs)
}

func condition(c kubernetes.Interface, node string) (*corev1.NodeCondition, error) {
	n, err := c.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	for _, cd := range n.Status.Conditions {
		if cd.Type == k8s.ConditionType {
			return &cd, nil
		}
	}
	return nil, nil
}

const (
	ns         = "podrouter"
	secretName = "podrouter-bgp"
)

func setupNamespaceAndSecret(t *testing.T, c kubernetes.Interface, pw string) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: secretName},
		Data:       map[string][]byte{"password": []byte(pw)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// startAdapter runs an adapter for node with rc until the test ends.
func startAdapter(t *testing.T, rc *rest.Config, node string, h k8s.HealthSource) (*sink, string) {
	t.Helper()
	cni := filepath.Join(t.TempDir(), "net.d", "10-podrouter.conflist")
	a, err := k8s.NewForConfig(k8s.Config{
		NodeName: node, Namespace: ns, PasswordSecret: secretName,
		DrainTaint: "podrouter.io/drain", ASNBase: 65000,
		CNIConfPath: cni, MTU: 1450, StatusInterval: 200 * time.Millisecond,
	}, rc, testLogger(t), h)
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{t: t, node: node}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, s) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("adapter run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("adapter did not stop within 15s of its context ending")
		}
	})
	return s, cni
}

func TestAdapterAgainstAPIServer(t *testing.T) {
	srv := k8stest.Start(t)
	c := srv.Client(t)
	setupNamespaceAndSecret(t, c, "first-secret")
	srv.CreateNode(t, "n1", []string{"10.244.1.0/24", "fd00:10:244:1::/64"}, func(n *corev1.Node) {
		n.Labels = map[string]string{k8s.LabelRack: "3"}
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.11"}}
	})
	srv.CreateNode(t, "n2", []string{"10.244.2.0/24"})

	// Bootstrap: one read, before the speaker exists.
	a, err := k8s.NewForConfig(k8s.Config{NodeName: "n1", Namespace: ns, PasswordSecret: secretName, ASNBase: 65000}, srv.Admin, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := a.Bootstrap(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if snap.Peering.ASN != 65003 || snap.Password != "first-secret" || len(snap.State.PodCIDRs) != 2 {
		t.Errorf("bootstrap snapshot = %+v", snap)
	}

	h := &steered{}
	s, cni := startAdapter(t, srv.Admin, "n1", h)
	dual := []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24"), netip.MustParsePrefix("fd00:10:244:1::/64")}

	t.Run("informer sees pod CIDRs, peering and password", func(t *testing.T) {
		eventually(t, "initial state", func() (bool, string) {
			st, p, pw, _ := s.last()
			return slices.Equal(st.PodCIDRs, dual) && !st.Drained && p.ASN == 65003 && pw == "first-secret",
				fmt.Sprintf("state %+v peering %+v password %q", st, p, pw)
		})
		b, err := os.ReadFile(cni)
		if err != nil {
			t.Fatalf("cni conflist: %v", err)
		}
		for _, want := range []string{`"subnet": "10.244.1.0/24"`, `"subnet": "fd00:10:244:1::/64"`, `"mtu": 1450`, `"type": "ptp"`, `"type": "host-local"`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("conflist lacks %s:\n%s", want, b)
			}
		}
		eventually(t, "CNI event", func() (bool, string) { return nodeEvent(c, "n1", k8s.EventCNIConfig, "10.244.1.0/24") })
	})

	t.Run("label and annotation change the peering", func(t *testing.T) {
		patchNode(t, c, "n1", `{"metadata":{"labels":{"podrouter.io/rack":"4"},"annotations":{"podrouter.io/peers":"[{\"address\":\"192.0.2.1\",\"asn\":65101}]"}}}`)
		eventually(t, "rack 4", func() (bool, string) {
			_, p, _, _ := s.last()
			return p.ASN == 65004 && p.Rack == 4 && len(p.ExtraPeers) == 1 && p.ExtraPeers[0].ASN == 65101, fmt.Sprintf("%+v", p)
		})
	})

	t.Run("malformed annotation: event, last good peering kept", func(t *testing.T) {
		_, _, _, before := s.last()
		patchNode(t, c, "n1", `{"metadata":{"annotations":{"podrouter.io/asn":"sixty-five-thousand"}}}`)
		eventually(t, "InvalidPeeringOverride event", func() (bool, string) {
			return nodeEvent(c, "n1", k8s.EventInvalidOverride, `podrouter.io/asn: "sixty-five-thousand" is not a usable ASN`)
		})
		// A later valid, unrelated change still reaches the state, and the
		// bad peering never reached the sink.
		patchNode(t, c, "n1", `{"spec":{"unschedulable":true}}`)
		eventually(t, "cordon → drained", func() (bool, string) {
			st, _, _, _ := s.last()
			return st.Drained, fmt.Sprintf("%+v", st)
		})
		if _, p, _, after := s.last(); after != before || p.ASN != 65004 {
			t.Errorf("peering changed to %+v (%d calls, was %d) while the annotation was malformed", p, after, before)
		}
		patchNode(t, c, "n1", `{"metadata":{"annotations":{"podrouter.io/asn":"65200"}}}`)
		eventually(t, "fixed annotation applies", func() (bool, string) {
			_, p, _, _ := s.last()
			return p.ASN == 65200, fmt.Sprintf("%+v", p)
		})
	})

	t.Run("uncordon, drain taint, exclude label", func(t *testing.T) {
		drained := func(want bool) func() (bool, string) {
			return func() (bool, string) {
				st, _, _, _ := s.last()
				return st.Drained == want && slices.Equal(st.PodCIDRs, dual), fmt.Sprintf("%+v", st)
			}
		}
		eventually(t, "Drained event", func() (bool, string) { return nodeEvent(c, "n1", k8s.EventDrained, "node cordoned") })
		patchNode(t, c, "n1", `{"spec":{"unschedulable":null}}`)
		eventually(t, "uncordon → not drained", drained(false))
		eventually(t, "Undrained event", func() (bool, string) { return nodeEvent(c, "n1", k8s.EventUndrained, "advertised") })
		patchNode(t, c, "n1", `{"spec":{"taints":[{"key":"podrouter.io/drain","effect":"NoSchedule"}]}}`)
		eventually(t, "taint → drained", drained(true))
		patchNode(t, c, "n1", `{"spec":{"taints":null}}`)
		eventually(t, "untaint → not drained", drained(false))
		patchNode(t, c, "n1", `{"metadata":{"labels":{"node.kubernetes.io/exclude-from-external-load-balancers":""}}}`)
		eventually(t, "exclude label → drained", drained(true))
		patchNode(t, c, "n1", `{"metadata":{"labels":{"node.kubernetes.io/exclude-from-external-load-balancers":null}}}`)
		eventually(t, "label removed → not drained", drained(false))
	})

	t.Run("condition and health events", func(t *testing.T) {
		eventually(t, "condition NotReconciled", func() (bool, string) {
			cd, err := condition(c, "n1")
			return err == nil && cd != nil && cd.Status == corev1.ConditionFalse && cd.Reason == health.ReasonNotReconciled, fmt.Sprintf("%+v %v", cd, err)
		})
		up := reconciled(1, established("10.0.0.1"), down("10.0.0.2"))
		up.Datapath.State = health.DatapathActive
		h.set(up)
		eventually(t, "condition True", func() (bool, string) {
			cd, err := condition(c, "n1")
			return err == nil && cd != nil && cd.Status == corev1.ConditionTrue && cd.Reason == health.ReasonReady &&
				strings.Contains(cd.Message, "BGP sessions 1/2 established"), fmt.Sprintf("%+v %v", cd, err)
		})
		eventually(t, "session up event", func() (bool, string) { return nodeEvent(c, "n1", health.EventSessionUp, "10.0.0.1") })
		bad := reconciled(0, down("10.0.0.1"), down("10.0.0.2"))
		bad.Peers[1].MaxPrefixTrips = 1
		bad.DefaultV4.Foreign = true
		bad.Datapath = health.Datapath{State: health.DatapathUnavailable, Reason: "pin dir not on bpffs"}
		h.set(bad)
		eventually(t, "condition False NoBGPSessions", func() (bool, string) {
			cd, err := condition(c, "n1")
			return err == nil && cd != nil && cd.Status == corev1.ConditionFalse && cd.Reason == health.ReasonNoSessions, fmt.Sprintf("%+v %v", cd, err)
		})
		for reason, sub := range map[string]string{
			health.EventSessionDown: "10.0.0.1", health.EventMaxPrefix: "10.0.0.2",
			health.EventForeignDefault: "did not install", health.EventFallback: "pin dir not on bpffs",
		} {
			eventually(t, reason+" event", func() (bool, string) { return nodeEvent(c, "n1", reason, sub) })
		}
	})

	t.Run("secret rotation calls back", func(t *testing.T) {
		if _, err := c.CoreV1().Secrets(ns).Update(context.Background(), &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: secretName},
			Data:       map[string][]byte{"password": []byte("second-secret")},
		}, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "rotated password", func() (bool, string) {
			_, _, pw, _ := s.last()
			return pw == "second-secret", pw
		})
		eventually(t, "rotation event", func() (bool, string) { return nodeEvent(c, "n1", k8s.EventPasswordRotated, secretName) })
		if _, err := c.CoreV1().Secrets(ns).Update(context.Background(), &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: secretName},
			Data:       map[string][]byte{"pasword": []byte("typo")},
		}, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "invalid secret event", func() (bool, string) { return nodeEvent(c, "n1", k8s.EventPasswordInvalid, `no key "password"`) })
		if _, _, pw, _ := s.last(); pw != "second-secret" {
			t.Errorf("password changed to %q by an unusable secret", pw)
		}
	})

	t.Run("other nodes are not watched", func(t *testing.T) {
		patchNode(t, c, "n2", `{"spec":{"unschedulable":true}}`)
		time.Sleep(time.Second) // the sink fails the test on any n2 state
	})
}
