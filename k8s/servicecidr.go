package k8s

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

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
	client kubernetes.Interface
	log    *slog.Logger
	resync time.Duration

	mu     sync.Mutex
	cur    []netip.Prefix
	synced bool
}

// ServiceCIDRs returns a watcher of the cluster's Service CIDRs that uses
// the adapter's client. Run it with Run.
func (a *Adapter) ServiceCIDRs() *ServiceCIDRs {
	return NewServiceCIDRs(a.client, a.log, a.cfg.Resync)
}

// NewServiceCIDRs returns a watcher using client; resync <= 0 uses
// DefaultResync.
func NewServiceCIDRs(client kubernetes.Interface, logger *slog.Logger, resync time.Duration) *ServiceCIDRs {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if resync <= 0 {
		resync = DefaultResync
	}
	return &ServiceCIDRs{client: client, log: logger, resync: resync}
}

// Run watches ServiceCIDR objects until ctx ends. kick is called (it must
// not block: a level-triggered kick, the caller reads Prefixes) once the
// first list is in and after every change of the set of prefixes. A
// failing API server is retried forever; the last known set stays.
func (s *ServiceCIDRs) Run(ctx context.Context, kick func()) error {
	f := informers.NewSharedInformerFactory(s.client, s.resync)
	inf := f.Networking().V1().ServiceCIDRs()
	changed := make(chan struct{}, 1)
	if _, err := inf.Informer().AddEventHandler(kicker(changed)); err != nil {
		return err
	}
	lister := inf.Lister()
	f.Start(ctx.Done())
	defer f.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
		return nil // ctx ended
	}
	sync := func() {
		objs, err := lister.List(labels.Everything())
		if err != nil {
			s.log.Error("list servicecidrs from cache", "err", err)
			return
		}
		ps := ServiceCIDRPrefixes(objs, s.log)
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

// ServiceCIDRPrefixes is the set of spec.cidrs of objs: masked, sorted
// (IPv4 before IPv6), without duplicates. A CIDR that does not parse (the
// API server validates them, so only a broken server sends one) is logged
// and left out.
func ServiceCIDRPrefixes(objs []*networkingv1.ServiceCIDR, logger *slog.Logger) []netip.Prefix {
	out := []netip.Prefix{}
	for _, o := range objs {
		for _, c := range o.Spec.CIDRs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				if logger != nil {
					logger.Warn("servicecidr with an unusable cidr, ignored", "servicecidr", o.Name, "cidr", c, "err", err)
				}
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
