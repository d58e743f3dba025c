package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
)

// objects are the loaded programs and the maps they share.
type objects struct {
	ep  fromEndpointObjects
	net fromNetworkObjects
}

func (o *objects) Close() error {
	return errors.Join(o.ep.Close(), o.net.Close())
}

// loadOpts tune loading beyond Config (tests and benchmarks).
type loadOpts struct {
	pinDir string // "" = no pinning (BPF_PROG_RUN tests)
	ttlDec uint8  // TTL decrement; 0 only for repeat benchmarks
	// Benchmarks only, to measure what each lookup costs: no nf_conntrack
	// lookup on a conntrack miss (NATed flows break), no pass-prefix lookup.
	noKernelCT, noPassLookup bool
}

// ErrNoConntrackKfunc: the kernel lacks the nf_conntrack kfuncs
// (bpf_skb_ct_lookup, bpf_ct_release) without which the fast path would
// bypass netfilter's reverse translation and break every Service; the
// programs are not loaded (Run's error wraps it and ErrUnavailable).
var ErrNoConntrackKfunc = errors.New("kernel lacks the nf_conntrack kfunc bpf_skb_ct_lookup " +
	"(needs CONFIG_NF_CONNTRACK and kernel BTF; with nf_conntrack as a module, the module loaded)")

// kfuncErr explains a load failure caused by a missing kfunc (the
// conntrack ones are the only kfuncs the programs call).
func kfuncErr(err error) error {
	if errors.Is(err, ebpf.ErrNotSupported) && strings.Contains(err.Error(), "kfunc") {
		return fmt.Errorf("%w: %w", ErrNoConntrackKfunc, err)
	}
	return err
}

func boolU8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// configure writes Config into a collection spec: map sizes, load-time
// constants and pinning.
func configure(spec *ebpf.CollectionSpec, cfg Config, o loadOpts) error {
	spec.Maps["pr_ct_tcp"].MaxEntries = uint32(cfg.CTSizeTCP)
	spec.Maps["pr_ct_other"].MaxEntries = uint32(cfg.CTSizeOther)
	for _, m := range spec.Maps {
		if o.pinDir == "" {
			m.Pinning = ebpf.PinNone
		}
	}
	vars := map[string]any{
		"cfg_ct_tcp_syn_ns": uint64(cfg.CTTimeouts.TCPSyn),
		"cfg_ct_tcp_est_ns": uint64(cfg.CTTimeouts.TCPEstablished),
		"cfg_ct_tcp_fin_ns": uint64(cfg.CTTimeouts.TCPClosing),
		"cfg_ct_udp_ns":     uint64(cfg.CTTimeouts.UDP),
		"cfg_ct_icmp_ns":    uint64(cfg.CTTimeouts.ICMP),
		"cfg_ttl_dec":       o.ttlDec,
		"cfg_pass_prefixes": boolU8(!o.noPassLookup),
		"run_kct_mode":      kctMode(cfg.KernelConntrack, o.noKernelCT),
		"cfg_nh_prefixes":   boolU8(len(cfg.NextHopCIDRs) > 0),
		"cfg_fib_fallback":  uint8(1),
	}
	for name, v := range vars {
		vs, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("variable %s missing from object", name)
		}
		if err := vs.Set(v); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	return nil
}

// setKernelCT writes the runtime nf_conntrack lookup mode into both
// programs' .data (mmaped: no reload, no map update).
func (o *objects) setKernelCT(v uint8) error {
	if err := o.ep.RunKctMode.Set(v); err != nil {
		return fmt.Errorf("set from-endpoint kernel conntrack mode: %w", err)
	}
	if err := o.net.RunKctMode.Set(v); err != nil {
		return fmt.Errorf("set from-network kernel conntrack mode: %w", err)
	}
	return nil
}

func kctMode(m KernelCTMode, off bool) uint8 {
	switch {
	case off:
		return uint8(fromEndpointPrKctModePR_KCT_OFF)
	case m == KernelCTAny:
		return uint8(fromEndpointPrKctModePR_KCT_ANY)
	}
	return uint8(fromEndpointPrKctModePR_KCT_NAT)
}

// loadSpecs reads both collection specs and writes Config into them.
func loadSpecs(cfg Config, o loadOpts) (ep, net *ebpf.CollectionSpec, err error) {
	if ep, err = loadFromEndpoint(); err != nil {
		return nil, nil, err
	}
	if net, err = loadFromNetwork(); err != nil {
		return nil, nil, err
	}
	if err := configure(ep, cfg, o); err != nil {
		return nil, nil, err
	}
	if err := configure(net, cfg, o); err != nil {
		return nil, nil, err
	}
	return ep, net, nil
}

// loadObjects loads both programs; the second object reuses the first's maps.
// With pinning, a pinned map whose spec changed (e.g. a new conntrack size)
// is dropped and recreated.
func loadObjects(cfg Config, o loadOpts) (*objects, error) {
	epSpec, netSpec, err := loadSpecs(cfg, o)
	if err != nil {
		return nil, err
	}
	return loadCollections(epSpec, netSpec, o)
}

func loadCollections(epSpec, netSpec *ebpf.CollectionSpec, o loadOpts) (*objects, error) {
	opts := &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: o.pinDir}}
	if o.pinDir != "" {
		if err := os.MkdirAll(o.pinDir, 0o700); err != nil {
			return nil, fmt.Errorf("create pin dir: %w", err)
		}
	}

	objs := &objects{}
	err := epSpec.LoadAndAssign(&objs.ep, opts)
	if errors.Is(err, ebpf.ErrMapIncompatible) && o.pinDir != "" {
		// Drop incompatible pins; compatible ones (conntrack) are kept.
		if rerr := removeIncompatiblePins(epSpec, o.pinDir); rerr != nil {
			return nil, errors.Join(err, rerr)
		}
		err = epSpec.LoadAndAssign(&objs.ep, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("load from-endpoint: %w", kfuncErr(verifierDetail(err)))
	}

	replace := map[string]*ebpf.Map{
		"pr_ct_tcp": objs.ep.PrCtTcp, "pr_ct_other": objs.ep.PrCtOther,
		"pr_endpoints": objs.ep.PrEndpoints, "pr_node_addrs": objs.ep.PrNodeAddrs,
		"pr_nexthops": objs.ep.PrNexthops, "pr_pass_prefixes": objs.ep.PrPassPrefixes,
		"pr_nh_prefixes": objs.ep.PrNhPrefixes, "pr_counters": objs.ep.PrCounters,
		"pr_trace_settings": objs.ep.PrTraceSettings, "pr_events": objs.ep.PrEvents,
	}
	for name := range netSpec.Maps {
		if _, ok := replace[name]; !ok && !isDataSection(name) {
			objs.ep.Close()
			return nil, fmt.Errorf("from-network map %s not shared with from-endpoint", name)
		}
	}
	if err := netSpec.LoadAndAssign(&objs.net, &ebpf.CollectionOptions{MapReplacements: replace}); err != nil {
		objs.ep.Close()
		return nil, fmt.Errorf("load from-network: %w", kfuncErr(verifierDetail(err)))
	}
	return objs, nil
}

func isDataSection(name string) bool {
	return len(name) > 0 && name[0] == '.'
}

func removeIncompatiblePins(spec *ebpf.CollectionSpec, dir string) error {
	var errs []error
	for name, ms := range spec.Maps {
		if ms.Pinning != ebpf.PinByName {
			continue
		}
		path := filepath.Join(dir, name)
		m, err := ebpf.LoadPinnedMap(path, nil)
		if err != nil {
			continue
		}
		info, ierr := m.Info()
		m.Close()
		if ierr != nil {
			continue
		}
		if info.Type != ms.Type || info.KeySize != ms.KeySize || info.ValueSize != ms.ValueSize ||
			info.MaxEntries != ms.MaxEntries || info.Flags != ms.Flags {
			if err := os.Remove(path); err != nil {
				errs = append(errs, fmt.Errorf("remove incompatible pin %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

func verifierDetail(err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return fmt.Errorf("%+v", ve)
	}
	return err
}
