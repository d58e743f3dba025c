package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"

	"github.com/podrouter/podrouter/agent"
	"github.com/podrouter/podrouter/config"
	"github.com/podrouter/podrouter/datapath"
	"github.com/podrouter/podrouter/health"
	"github.com/podrouter/podrouter/routes"
)

// fastPath supervises the eBPF datapath next to the agent: it runs it,
// remembers whether it fell back to the kernel path and why, and reports
// its health.
type fastPath struct {
	cfg config.Datapath
	dp  *datapath.Datapath // nil when disabled
	log *slog.Logger

	mu     sync.Mutex
	state  health.DatapathState
	reason error // why it is unavailable
}

// newFastPath builds the datapath (no I/O); pods are the pod CIDRs known
// at start (the agent hands over later ones).
func newFastPath(c config.Datapath, pods []netip.Prefix, log *slog.Logger) (*fastPath, error) {
	f := &fastPath{cfg: c, state: health.DatapathDisabled, log: log}
	if !c.Enabled {
		return f, nil
	}
	dp, err := datapath.New(datapath.Config{
		PinDir:          c.PinDir,
		Uplinks:         c.Uplinks,
		PodCIDRs:        pods,
		PassCIDRs:       c.PassCIDRs,
		KernelConntrack: kernelConntrack(c.KernelConntrack),
		CTSizeTCP:       c.CTSizeTCP,
		CTSizeOther:     c.CTSizeOther,
	}, log)
	if err != nil {
		return nil, err
	}
	f.dp, f.state = dp, health.DatapathStarting
	return f, nil
}

// kernelConntrack is the datapath mode a config value starts with (auto
// starts as nat; the services controller may switch it).
func kernelConntrack(v string) datapath.KernelCTMode {
	if v == config.KernelConntrackAny {
		return datapath.KernelCTAny
	}
	return datapath.KernelCTNAT
}

// agentDatapath is the agent's view of the fast path (nil when disabled).
func (f *fastPath) agentDatapath() agent.Datapath {
	if f.dp == nil {
		return nil
	}
	return datapathAdapter{f.dp}
}

// run runs the datapath until ctx ends. A fast path that cannot load is not
// fatal: it logs why, records it for status, and returns nil so the daemon
// keeps forwarding on the kernel path.
func (f *fastPath) run(ctx context.Context) error {
	if f.dp == nil {
		f.removeStalePins()
		<-ctx.Done()
		return nil
	}
	f.set(health.DatapathActive, nil)
	err := f.dp.Run(ctx)
	if errors.Is(err, datapath.ErrUnavailable) {
		f.set(health.DatapathUnavailable, err)
		f.log.Error("ebpf fast path unavailable; forwarding on the kernel path", "err", err,
			"pin_dir", f.cfg.PinDir, "hint", "the pin dir must be on a bpffs mounted in the host mount namespace")
		<-ctx.Done()
		return nil
	}
	return err
}

// removeStalePins: with the fast path disabled, links and maps a previous
// run left pinned would keep forwarding behind the kernel's back. Remove
// them, so that turning the fast path off takes effect on restart.
func (f *fastPath) removeStalePins() {
	if _, err := os.Stat(f.cfg.PinDir); err != nil {
		return
	}
	if err := datapath.Unpin(f.cfg.PinDir); err != nil {
		f.log.Warn("remove pins left by an earlier run", "pin_dir", f.cfg.PinDir, "err", err)
		return
	}
	f.log.Info("datapath disabled: detached and removed pins left by an earlier run", "pin_dir", f.cfg.PinDir)
}

// unpin detaches every hook and removes every pin: drain/uninstall.
func (f *fastPath) unpin() {
	if f.dp == nil {
		return
	}
	if err := datapath.Unpin(f.cfg.PinDir); err != nil {
		f.log.Error("detach and unpin datapath", "pin_dir", f.cfg.PinDir, "err", err)
		return
	}
	f.log.Info("datapath detached and unpinned", "pin_dir", f.cfg.PinDir)
}

func (f *fastPath) set(state health.DatapathState, reason error) {
	f.mu.Lock()
	f.state, f.reason = state, reason
	f.mu.Unlock()
}

// health is the fast path's state. While active it also has the usage of
// the pinned conntrack and endpoint maps, counted now through the pins
// (batch lookups, without the datapath's lock).
func (f *fastPath) health() health.Datapath {
	f.mu.Lock()
	h := health.Datapath{State: f.state}
	if f.reason != nil {
		h.Reason, h.Cause = f.reason.Error(), cause(f.reason).Error()
	}
	f.mu.Unlock()
	if f.dp == nil {
		return h
	}
	h.PinDir = f.cfg.PinDir
	h.Uplinks = slices.Clone(f.cfg.Uplinks)
	st := f.dp.Status()
	if h.State == health.DatapathActive && !st.Loaded {
		h.State = health.DatapathStarting
	}
	if st.Err != nil && h.State == health.DatapathActive {
		h.Error = st.Err.Error()
	}
	for _, ifname := range st.Attached {
		if slices.Contains(f.cfg.Uplinks, ifname) {
			h.FromNetwork = append(h.FromNetwork, ifname)
		} else {
			h.FromEndpoint = append(h.FromEndpoint, ifname)
		}
	}
	slices.Sort(h.FromNetwork)
	slices.Sort(h.FromEndpoint)
	h.GCRuns, h.GCRemoved, h.GCLastDuration = st.GCRuns, st.GCRemoved, st.GCLastDuration
	h.RepairedEntries, h.RepairedHooks = st.RepairedEntries, st.RepairedHooks
	if h.State == health.DatapathActive {
		h.Maps, h.MapsError = mapUsage(f.cfg.PinDir)
	}
	return h
}

// cause is err without the datapath.ErrUnavailable wrapping: the
// underlying problem, found by the error's structure, not its text.
func cause(err error) error {
	if m, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range m.Unwrap() {
			if !errors.Is(e, datapath.ErrUnavailable) {
				return e
			}
		}
	}
	return err
}

// mapUsage counts the entries of the maps pinned under pinDir.
func mapUsage(pinDir string) ([]health.MapUsage, string) {
	p, err := datapath.OpenPinned(pinDir)
	if err != nil {
		return nil, err.Error()
	}
	defer p.Close()
	us, err := p.Usage()
	if err != nil {
		return us, err.Error()
	}
	return us, ""
}

// datapathAdapter hands the agent's desired state to the datapath.
type datapathAdapter struct{ d *datapath.Datapath }

func (a datapathAdapter) SetPodCIDRs(ctx context.Context, ps []netip.Prefix) error {
	return a.d.SetPodCIDRs(ctx, ps)
}

// SetNextHops gives the datapath the default route's next hops: the
// kernel's next hop (gateway, link) is the datapath's ECMP slot (gateway,
// uplink), whose MACs it resolves itself.
func (a datapathAdapter) SetNextHops(ctx context.Context, nhs []routes.NextHop) error {
	out := make([]datapath.NextHop, 0, len(nhs))
	for _, nh := range nhs {
		// The neighbour table knows link-local gateways without a zone.
		out = append(out, datapath.NextHop{Gateway: nh.Gateway.WithZone(""), Uplink: nh.Link})
	}
	return a.d.SetNextHops(ctx, out)
}
