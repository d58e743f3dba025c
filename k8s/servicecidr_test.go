package k8s_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/podrouter/podrouter/k8s"
	"github.com/podrouter/podrouter/k8s/k8stest"
)

func TestServiceCIDRPrefixes(t *testing.T) {
	obj := func(name string, cidrs ...string) any {
		o := &networkingv1.ServiceCIDR{TypeMeta: metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "ServiceCIDR"},
			ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: networkingv1.ServiceCIDRSpec{CIDRs: cidrs}}
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			t.Fatal(err)
		}
		return &unstructured.Unstructured{Object: m}
	}
	broken := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": "x"}, "spec": map[string]any{"cidrs": "10.0.0.0/8"}}}
	for _, tc := range []struct {
		name string
		objs []any
		want string
	}{
		{"none", nil, "[]"},
		{"default dual stack", []any{obj("kubernetes", "fd00:96::/112", "10.96.0.0/16")}, "[10.96.0.0/16 fd00:96::/112]"},
		{"several, sorted, IPv4 first", []any{obj("b", "fd00:97::/120", "10.97.0.0/24"), obj("a", "10.96.0.0/16", "fd00:96::/112")},
			"[10.96.0.0/16 10.97.0.0/24 fd00:96::/112 fd00:97::/120]"},
		{"duplicates once", []any{obj("a", "10.96.0.0/16"), obj("b", "10.96.0.0/16")}, "[10.96.0.0/16]"},
		{"same address, shorter first", []any{obj("a", "10.96.0.0/24"), obj("b", "10.96.0.0/16")}, "[10.96.0.0/16 10.96.0.0/24]"},
		{"host bits masked", []any{obj("a", "10.96.1.1/16")}, "[10.96.0.0/16]"},
		{"garbage left out", []any{obj("a", "10.96.0.0/16", "not-a-cidr", "10.1.2.3")}, "[10.96.0.0/16]"},
		{"spec.cidrs not a list, not a ServiceCIDR", []any{broken, "a string", obj("a", "10.96.0.0/16")}, "[10.96.0.0/16]"},
		{"no spec", []any{&unstructured.Unstructured{Object: map[string]any{}}}, "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fmt.Sprint(k8s.ServiceCIDRPrefixes(tc.objs, nil)); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// TestServiceCIDRsAgainstAPIServer watches the ServiceCIDR objects of a
// real API server: the default one at start, an added one, one being
// deleted (still counted while a Service holds one of its ClusterIPs),
// then gone.
func TestServiceCIDRsAgainstAPIServer(t *testing.T) {
	srv := k8stest.Start(t)
	w, kicks := startServiceCIDRs(t, srv.Admin)
	c := srv.Client(t)
	ctx := context.Background()
	waitPrefixes(t, w, "the default ServiceCIDR (--service-cluster-ip-range)", "10.96.0.0/16")
	eventually(t, "a kick after the first list", func() (bool, string) { return kicks.Load() == 1, fmt.Sprint(kicks.Load()) })
	k0 := kicks.Load()
	extra := &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "extra"}, Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.97.0.0/24", "fd00:97::/120"}}}
	start := time.Now()
	if _, err := c.NetworkingV1().ServiceCIDRs().Create(ctx, extra, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPrefixes(t, w, "an added ServiceCIDR", "10.96.0.0/16", "10.97.0.0/24", "fd00:97::/120")
	t.Logf("added ServiceCIDR seen %s after it was created", time.Since(start).Round(time.Millisecond))
	eventually(t, "a kick for the added ServiceCIDR", func() (bool, string) { return kicks.Load() > k0, fmt.Sprint(kicks.Load()) })
	// kube-controller-manager's ServiceCIDR controller puts a finalizer
	// on every ServiceCIDR and lifts it once no ClusterIP of it is in use;
	// no controller-manager runs here, so the test holds it itself. While
	// the object is terminating its CIDRs must still count.
	if _, err := c.NetworkingV1().ServiceCIDRs().Patch(ctx, "extra", types.MergePatchType,
		[]byte(`{"metadata":{"finalizers":["networking.k8s.io/service-cidr-finalizer"]}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.NetworkingV1().ServiceCIDRs().Delete(ctx, "extra", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the ServiceCIDR terminating", func() (bool, string) {
		o, err := c.NetworkingV1().ServiceCIDRs().Get(ctx, "extra", metav1.GetOptions{})
		return err == nil && o.DeletionTimestamp != nil, fmt.Sprint(err)
	})
	time.Sleep(300 * time.Millisecond)
	if ps, _ := w.Prefixes(); len(ps) != 3 {
		t.Errorf("terminating ServiceCIDR dropped while its ClusterIPs may still be in use: %v", ps)
	}
	if _, err := c.NetworkingV1().ServiceCIDRs().Patch(ctx, "extra", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPrefixes(t, w, "the deleted ServiceCIDR gone", "10.96.0.0/16")
}

func startServiceCIDRs(t *testing.T, rc *rest.Config) (*k8s.ServiceCIDRs, *atomic.Int64) {
	t.Helper()
	a, err := k8s.NewForConfig(k8s.Config{NodeName: "n1"}, rc, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := a.ServiceCIDRs()
	if err != nil {
		t.Fatal(err)
	}
	kicks := &atomic.Int64{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func() { kicks.Add(1) }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("servicecidrs run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("servicecidrs watcher did not stop within 15s of its context ending")
		}
	})
	return w, kicks
}

func waitPrefixes(t *testing.T, w *k8s.ServiceCIDRs, what string, want ...string) {
	t.Helper()
	var wp []netip.Prefix
	for _, s := range want {
		wp = append(wp, netip.MustParsePrefix(s))
	}
	eventually(t, what, func() (bool, string) {
		ps, synced := w.Prefixes()
		return synced && slices.Equal(ps, wp), fmt.Sprintf("synced %v, %v", synced, ps)
	})
}
