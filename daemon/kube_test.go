package daemon

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podrouter/podrouter/agent"
	"github.com/podrouter/podrouter/bgp"
	"github.com/podrouter/podrouter/config"
	"github.com/podrouter/podrouter/health"
	"github.com/podrouter/podrouter/k8s"
	"github.com/podrouter/podrouter/k8s/k8stest"
)

func TestApplyPeering(t *testing.T) {
	a := netip.MustParseAddr
	sc := bgp.Config{RouterID: a("10.0.0.9"), ASN: 64512, Peers: []bgp.PeerConfig{{
		Address: a("192.0.2.1"), ASN: 65000, LocalAddress: a("192.0.2.9"), HoldTime: 6 * time.Second, KeepaliveInterval: 2 * time.Second, TTLMin: 255,
	}}}
	tmpl := peerConfig(config.DefaultPeer())
	applyPeering(&sc, k8s.Peering{ASN: 4200000003, Rack: 3, RouterID: a("10.1.0.3"), ExtraPeers: []k8s.Peer{
		{Address: a("192.0.2.1"), ASN: 1}, // already configured: kept as configured
		{Address: a("192.0.2.2"), ASN: 65001},
	}}, "pw", tmpl)
	if sc.ASN != 4200000003 || sc.RouterID != a("10.1.0.3") || len(sc.Peers) != 2 {
		t.Fatalf("config = %+v", sc)
	}
	p0, p1 := sc.Peers[0], sc.Peers[1]
	if p0.ASN != 65000 || p0.Password != "pw" || p1.Address != a("192.0.2.2") || p1.ASN != 65001 || p1.Password != "pw" ||
		p1.HoldTime != 6*time.Second || p1.TTLMin != 255 || p1.LocalAddress.IsValid() {
		t.Errorf("peers = %+v", sc.Peers)
	}
	// No overrides: nothing changes.
	before := fmt.Sprintf("%+v", sc)
	applyPeering(&sc, k8s.Peering{Rack: -1}, "", tmpl)
	if after := fmt.Sprintf("%+v", sc); after != before {
		t.Errorf("empty overrides changed the config:\n%s\n%s", before, after)
	}
	// Without a configured peer to copy, an extra peer has the config's
	// defaults (declared once, in config).
	none := bgp.Config{RouterID: a("10.0.0.9"), ASN: 64512}
	applyPeering(&none, k8s.Peering{Rack: -1, ExtraPeers: []k8s.Peer{{Address: a("192.0.2.2"), ASN: 65001}}}, "", tmpl)
	if p := none.Peers[0]; p.HoldTime != config.DefaultHoldTime || p.KeepaliveInterval != config.DefaultHoldTime/3 ||
		p.ConnectRetry != config.DefaultConnectRetry || !p.GracefulRestart || p.RestartTime != config.DefaultRestartTime {
		t.Errorf("extra peer without a template: %+v", p)
	}
}

// fakeAgent records node states like the agent does.
type fakeAgent struct {
	mu sync.Mutex
	ns agent.NodeState
}

func (f *fakeAgent) SetNodeState(ns agent.NodeState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ns = ns
}

func (f *fakeAgent) Status() agent.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return agent.Status{Node: f.ns, Reconciles: 1}
}

// TestKubernetesMode runs the wiring the daemon uses (kubeconfig file,
// bootstrap, runner) against a real API server and checks that a cordon
// reaches the agent.
func TestKubernetesMode(t *testing.T) {
	srv := k8stest.Start(t)
	c := srv.Client(t)
	srv.CreateNode(t, "n1", []string{"10.244.1.0/24", "fd00:10:244:1::/64"}, func(n *corev1.Node) {
		n.Labels = map[string]string{k8s.LabelRack: "2"}
	})
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q, certificate-authority-data: %q}}]
users: [{name: u, user: {token: %q}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`, srv.Admin.Host, base64.StdEncoding.EncodeToString(srv.Admin.CAData), srv.Admin.BearerToken)), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kube, err := startKubernetes(ctx, k8s.Config{Kubeconfig: kubeconfig, NodeName: "n1", ASNBase: 65000, StatusInterval: 100 * time.Millisecond}, log)
	if err != nil {
		t.Fatal(err)
	}
	snap := kube.Snapshot()
	if len(snap.State.PodCIDRs) != 2 || snap.Peering.ASN != 65002 {
		t.Fatalf("snapshot = %+v", snap)
	}
	cfg := &config.Config{}
	cfg.ApplyDefaults()
	pr := newPeering(log, cfg, bgp.Config{ASN: 64512}, nil)
	kube.InitPeering(pr)
	if sc := pr.Desired(); sc.ASN != 65002 {
		t.Errorf("ASN after overrides = %d", sc.ASN)
	}
	ag := &fakeAgent{}
	done := make(chan error, 1)
	go func() { done <- kube.Runner(ag, nil, pr)(ctx) }()
	if _, err := c.CoreV1().Nodes().Patch(ctx, "n1", "application/strategic-merge-patch+json", []byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := ag.Status()
		if st.Node.Drained && slices.Equal(st.Node.PodCIDRs, snap.State.PodCIDRs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cordon did not reach the agent: %+v", st.Node)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("runner: %v", err)
	}
}

type fixedHealth health.Snapshot

func (f fixedHealth) Snapshot(context.Context) health.Snapshot { return health.Snapshot(f) }

// TestKubeHealth: until the daemon hands its health over, the condition
// says "not reconciled"; then it renders the daemon's snapshot.
func TestKubeHealth(t *testing.T) {
	h := &kubeHealth{}
	if got := h.Snapshot(context.Background()); got.Reconcile.Count != 0 || got.Condition().Reason != health.ReasonNotReconciled {
		t.Errorf("before Runner: %+v", got)
	}
	want := health.Snapshot{Reconcile: health.Reconcile{Count: 3},
		Datapath: health.Datapath{State: health.DatapathUnavailable, Reason: "pin dir not on bpffs"}}
	h.set(fixedHealth(want))
	if got := h.Snapshot(context.Background()); got.Reconcile.Count != 3 || got.Datapath.Reason != "pin dir not on bpffs" {
		t.Errorf("after Runner: %+v", got)
	}
}
