package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/podrouter/podrouter/config"
	"github.com/podrouter/podrouter/datapath"
	"github.com/podrouter/podrouter/health"
	"github.com/podrouter/podrouter/k8s"
)

// Services keeps kube-proxy's Services working with the fast path:
//
//   - traffic to the cluster's Service CIDRs (its ServiceCIDR objects,
//     learned live) and to datapath.passCIDRs goes to the kernel stack,
//     where kube-proxy translates it; the fast path sends the replies of
//     what netfilter translated back through the stack itself (nf_conntrack
//     lookup on a conntrack miss, datapath/);
//   - kube-proxy's mode is asked on its metrics port: iptables and nftables
//     translate in nf_nat, which the fast path finds; another mode (IPVS)
//     does not mark its translations as NAT, so with kernelConntrack auto
//     every flow nf_conntrack knows is handed to the stack instead, and
//     the status, an Event and the metrics say so.
type services struct {
	log      *slog.Logger
	dp       *datapath.Datapath // nil: fast path disabled
	cidrs    *k8s.ServiceCIDRs  // nil: Service CIDRs not learned
	probeURL string             // "": do not probe kube-proxy
	auto     bool               // datapath.kernelConntrack auto

	kick chan struct{}

	mu       sync.Mutex
	learned  []netip.Prefix
	synced   bool
	applyErr error
	proxy    health.ProxyState
	mode     k8s.ProxyMode
	probeErr error
}

// Probe periods: until kube-proxy first answers, and after.
const (
	proxyProbeStart  = 2 * time.Second
	proxyProbeSteady = 30 * time.Second
)

// newServices builds the controller: cidrs may be nil (not Kubernetes
// mode, or kubernetes.serviceCIDRs false); dp nil when the fast path is
// disabled (then it only reports).
func newServices(cfg *config.Config, dp *datapath.Datapath, cidrs *k8s.ServiceCIDRs, log *slog.Logger) *services {
	s := &services{log: log, dp: dp, cidrs: cidrs, kick: make(chan struct{}, 1),
		auto: cfg.Datapath.KernelConntrack == config.KernelConntrackAuto}
	if cfg.Kubernetes.Enabled && dp != nil && cfg.Kubernetes.KubeProxyModeURL != config.KubeProxyProbeOff {
		s.probeURL = cfg.Kubernetes.KubeProxyModeURL
		if s.probeURL == "" {
			s.probeURL = k8s.DefaultProxyModeURL
		}
	}
	return s
}

func (s *services) trigger() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// run learns the Service CIDRs and probes kube-proxy until ctx ends.
func (s *services) run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if s.cidrs != nil {
		wg.Go(func() {
			if err := s.cidrs.Run(ctx, s.trigger); err != nil && ctx.Err() == nil {
				s.log.Error("service cidr watch stopped", "err", err)
			}
		})
	}
	if s.probeURL != "" {
		wg.Go(func() { s.probeLoop(ctx) })
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.kick:
			s.applyCIDRs(ctx)
		}
	}
}

// applyCIDRs hands the learned Service CIDRs to the fast path (which
// merges them with datapath.passCIDRs).
func (s *services) applyCIDRs(ctx context.Context) {
	if s.cidrs == nil {
		return
	}
	ps, synced := s.cidrs.Prefixes()
	var err error
	if s.dp != nil && synced {
		err = s.dp.SetPassCIDRs(ctx, ps)
		if err != nil {
			s.log.Error("hand service cidrs to the fast path", "cidrs", ps, "err", err)
		} else {
			s.log.Info("service cidrs handed to the kernel stack", "cidrs", ps)
		}
	}
	s.mu.Lock()
	s.learned, s.synced, s.applyErr = slices.Clone(ps), synced, err
	s.mu.Unlock()
}

func (s *services) probeLoop(ctx context.Context) {
	for {
		s.probe(ctx)
		s.mu.Lock()
		next := proxyProbeSteady
		if s.proxy != health.ProxySupported && s.proxy != health.ProxyUnsupported {
			next = proxyProbeStart
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

// probe asks kube-proxy its mode and, with kernelConntrack auto, moves the
// fast path to KernelCTAny while the mode is one it cannot follow (and
// back to KernelCTNAT when it can).
func (s *services) probe(ctx context.Context) {
	mode, err := k8s.ProbeProxyMode(ctx, nil, s.probeURL) // nil: its own client with a short timeout
	state := health.ProxyAbsent
	if err == nil {
		state = health.ProxySupported
		if mode.Supported() != nil {
			state = health.ProxyUnsupported
		}
	}
	s.mu.Lock()
	changed := state != s.proxy || mode != s.mode
	s.proxy, s.mode, s.probeErr = state, mode, err
	s.mu.Unlock()
	if changed {
		switch state {
		case health.ProxyAbsent:
			s.log.Info("no kube-proxy answers", "url", s.probeURL, "err", err)
		case health.ProxySupported:
			s.log.Info("kube-proxy found", "mode", mode)
		default:
			s.log.Warn("kube-proxy mode not supported by the fast path", "mode", mode, "err", mode.Supported())
		}
	}
	if !s.auto || state == health.ProxyAbsent {
		return // without an answer, keep the mode in force
	}
	want := datapath.KernelCTNAT
	if state == health.ProxyUnsupported {
		want = datapath.KernelCTAny
	}
	if have, err := s.dp.KernelConntrack(); err == nil && have == want {
		return
	} else if err != nil && !errors.Is(err, datapath.ErrNotRunning) {
		s.log.Warn("read kernel conntrack mode", "err", err)
	}
	if err := s.dp.SetKernelConntrack(want); err != nil && !errors.Is(err, datapath.ErrNotRunning) {
		s.log.Error("set kernel conntrack mode", "mode", want, "err", err)
		return
	}
	s.log.Info("kernel conntrack mode", "mode", want, "kube_proxy", mode)
}

// health is the Services part of the daemon's snapshot (zero for a nil
// controller).
func (s *services) health() health.Services {
	if s == nil {
		return health.Services{}
	}
	s.mu.Lock()
	h := health.Services{
		Learned: s.cidrs != nil, Synced: s.synced, ServiceCIDRs: slices.Clone(s.learned),
		Proxy: s.proxy, ProxyMode: string(s.mode), KernelConntrackAuto: s.auto,
	}
	if s.applyErr != nil {
		h.Error = s.applyErr.Error()
	}
	if s.probeErr != nil {
		h.ProxyError = s.probeErr.Error()
	}
	s.mu.Unlock()
	if s.dp == nil {
		return h
	}
	if ps, err := s.dp.PassCIDRs(); err == nil {
		h.PassCIDRs = ps
	}
	if m, err := s.dp.KernelConntrack(); err == nil {
		h.KernelConntrack = m.String()
	}
	return h
}
