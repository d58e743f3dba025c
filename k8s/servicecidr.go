package k8s

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
)

// serviceCIDRResource is networking.k8s.io/v1 servicecidrs. It is read
// through the dynamic client as unstructured objects (spec.cidrs only):
// the typed networking/v1 API group would link every networking type into
// the daemon for one string list.
var serviceCIDRResource = schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "servicecidrs"}

// ServiceCIDRs is the cluster's Service CIDRs, read from its
// networking.k8s.io/v1 ServiceCIDR objects (the default one, "kubernetes",
// mirrors the API server's --service-cluster-ip-range; more can be added
// at run time). The daemon merges them with datapath.passCIDRs, so that
// traffic to a ClusterIP goes through the node's stack, where kube-proxy
// translates it, without hand configuration.
//
// Every CIDR of every object counts, also of objects being deleted: their
// ClusterIPs stay in use until the last Service in them is gone. It needs
// list and watch on servicecidrs (deploy/kubernetes/rbac.yaml).
type ServiceCIDRs struct {
	client dynamic.Interface
	log    *slog.Logger
	resync time.Duration

	mu     sync.Mutex
	cur    []netip.Prefix
	synced bool
}

// ServiceCIDRs returns a watcher of the cluster's Service CIDRs with the
// adapter's credentials. Run it with Run.
func (a *Adapter) ServiceCIDRs() (*ServiceCIDRs, error) {
	dc, err := dynamic.NewForConfig(a.rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return &ServiceCIDRs{client: dc, log: a.log, resync: a.cfg.Resync}, nil
}

// Run watches ServiceCIDR objects until ctx ends. kick is called (it must
// not block: a level-triggered kick, the caller reads Prefixes) once the
// first list is in and after every change of the set of prefixes. A
// failing API server is retried forever; the last known set stays.
func (s *ServiceCIDRs) Run(ctx context.Context, kick func()) error {
	ri := s.client.Resource(serviceCIDRResource)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return ri.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return ri.Watch(ctx, o)
		},
	}
	inf := cache.NewSharedIndexInformer(lw, &unstructured.Unstructured{}, s.resync, cache.Indexers{})
	changed := make(chan struct{}, 1)
	if _, err := inf.AddEventHandler(kicker(changed)); err != nil {
		return err
	}
	ictx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { inf.RunWithContext(ictx) })
	defer func() { stop(); wg.Wait() }()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil // ctx ended
	}
	sync := func() {
		ps := ServiceCIDRPrefixes(inf.GetStore().List(), s.log)
		s.mu.Lock()
		same := s.synced && slices.Equal(s.cur, ps)
		s.cur, s.synced = ps, true
		s.mu.Unlock()
		if !same {
			s.log.Info("service cidrs", "cidrs", ps)
			kick()
		}
	}
	sync()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			sync()
		}
	}
}

// Prefixes returns the Service CIDRs (sorted, no duplicates; IPv4 first)
// and whether the first list has arrived. Callers must not modify the
// slice.
func (s *ServiceCIDRs) Prefixes() ([]netip.Prefix, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, s.synced
}

// ServiceCIDRPrefixes is the set of spec.cidrs of ServiceCIDR objects (as
// the informer stores them: *unstructured.Unstructured): masked, sorted
// (IPv4 before IPv6), without duplicates. A CIDR that does not parse (the
// API server validates them, so only a broken server sends one) is logged
// and left out.
func ServiceCIDRPrefixes(objs []any, logger *slog.Logger) []netip.Prefix {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	out := []netip.Prefix{}
	for _, obj := range objs {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			logger.Warn("servicecidr informer holds an unexpected object, ignored", "type", fmt.Sprintf("%T", obj))
			continue
		}
		cidrs, _, err := unstructured.NestedStringSlice(u.Object, "spec", "cidrs")
		if err != nil {
			logger.Warn("servicecidr with an unusable spec.cidrs, ignored", "servicecidr", u.GetName(), "err", err)
			continue
		}
		for _, c := range cidrs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				logger.Warn("servicecidr with an unusable cidr, ignored", "servicecidr", u.GetName(), "cidr", c, "err", err)
				continue
			}
			out = append(out, p.Masked())
		}
	}
	slices.SortFunc(out, comparePrefix)
	return slices.Compact(out)
}

// comparePrefix orders by family (IPv4 first), address, then length.
func comparePrefix(a, b netip.Prefix) int {
	if a.Addr().Is4() != b.Addr().Is4() {
		if a.Addr().Is4() {
			return -1
		}
		return 1
	}
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
