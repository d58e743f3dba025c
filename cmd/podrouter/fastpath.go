package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/podrouter/podrouter/agent"
	"github.com/podrouter/podrouter/config"
	"github.com/podrouter/podrouter/datapath"
)

// Fast path states (FastPathReport.State).
const (
	fastPathDisabled    = "disabled"    // datapath.enabled is false
	fastPathStarting    = "starting"    // Run not yet loaded the programs
	fastPathActive      = "active"      // programs loaded, hooks attached
	fastPathUnavailable = "unavailable" // load/attach failed: kernel path only
)

// fastPath runs the eBPF datapath next to the agent and remembers whether
// it fell back to the kernel path, and why.
type fastPath struct {
	cfg config.Datapath
	dp  *datapath.Datapath // nil when disabled

	mu     sync.Mutex
	state  string
	reason string
}

// Datapath modes (FastPathReport.Mode): where pod traffic is forwarded.
const (
	modeEBPF   = "ebpf"   // the fast path's programs forward it
	modeKernel = "kernel" // the kernel's forwarding path (and netfilter)
)

// FastPathReport is the fast path's state for `podrouter status`.
type FastPathReport struct {
	Enabled  bool     `json:"enabled"`
	State    string   `json:"state"`
	Mode     string   `json:"mode"` // ebpf or kernel
	PinDir   string   `json:"pinDir,omitempty"`
	Reason   string   `json:"reason,omitempty"` // why the kernel path is used
	Attached []string `json:"attached,omitempty"`
	LastErr  string   `json:"lastError,omitempty"` // last reconcile problem while active
	// Uplinks are the configured uplinks; FromNetwork and FromEndpoint
	// split Attached by program.
	Uplinks      []string `json:"uplinks,omitempty"`
	FromNetwork  []string `json:"fromNetwork,omitempty"`
	FromEndpoint []string `json:"fromEndpoint,omitempty"`
	// Maps is the usage of the conntrack and endpoint maps, read from
	// the pins (empty unless active).
	Maps    []MapUsageReport `json:"maps,omitempty"`
	MapsErr string           `json:"mapsError,omitempty"`
}

// MapUsageReport is how full one BPF map is.
type MapUsageReport struct {
	Map      string `json:"map"` // ct_tcp, ct_other, endpoints
	Entries  int    `json:"entries"`
	Capacity int    `json:"capacity"`
}

// usage returns the named map's report (zero if absent).
func (r FastPathReport) usage(name string) (MapUsageReport, bool) {
	for _, m := range r.Maps {
		if m.Map == name {
			return m, true
		}
	}
	return MapUsageReport{}, false
}

func newFastPath(c *config.Config, log *slog.Logger) (*fastPath, error) {
	f := &fastPath{cfg: c.Datapath, state: fastPathDisabled}
	if !c.Datapath.Enabled {
		return f, nil
	}
	dp, err := datapath.New(datapath.Config{
		PinDir:      c.Datapath.PinDir,
		Uplinks:     c.Datapath.Uplinks,
		PodCIDRs:    c.PodCIDRs,
		PassCIDRs:   c.Datapath.PassCIDRs,
		CTSizeTCP:   c.Datapath.CTSizeTCP,
		CTSizeOther: c.Datapath.CTSizeOther,
	}, log)
	if err != nil {
		return nil, err
	}
	f.dp, f.state = dp, fastPathStarting
	return f, nil
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
func (f *fastPath) run(ctx context.Context, log *slog.Logger) error {
	if f.dp == nil {
		f.removeStalePins(log)
		<-ctx.Done()
		return nil
	}
	f.set(fastPathActive, "")
	err := f.dp.Run(ctx)
	if errors.Is(err, datapath.ErrUnavailable) {
		f.set(fastPathUnavailable, err.Error())
		log.Error("ebpf fast path unavailable; forwarding on the kernel path", "err", err,
			"pin_dir", f.cfg.PinDir, "hint", "the pin dir must be on a bpffs mounted in the host mount namespace")
		<-ctx.Done()
		return nil
	}
	return err
}

// removeStalePins: with the fast path disabled, links and maps a previous
// run left pinned would keep forwarding behind the kernel's back. Remove
// them, so that turning the fast path off takes effect on restart.
func (f *fastPath) removeStalePins(log *slog.Logger) {
	if _, err := os.Stat(f.cfg.PinDir); err != nil {
		return
	}
	if err := datapath.Unpin(f.cfg.PinDir); err != nil {
		log.Warn("remove pins left by an earlier run", "pin_dir", f.cfg.PinDir, "err", err)
		return
	}
	log.Info("datapath disabled: detached and removed pins left by an earlier run", "pin_dir", f.cfg.PinDir)
}

// unpin detaches every hook and removes every pin: drain/uninstall.
func (f *fastPath) unpin(log *slog.Logger) {
	if f.dp == nil {
		return
	}
	if err := datapath.Unpin(f.cfg.PinDir); err != nil {
		log.Error("detach and unpin datapath", "pin_dir", f.cfg.PinDir, "err", err)
		return
	}
	log.Info("datapath detached and unpinned", "pin_dir", f.cfg.PinDir)
}

func (f *fastPath) set(state, reason string) {
	f.mu.Lock()
	f.state, f.reason = state, reason
	f.mu.Unlock()
}

// Report returns the fast path's state for status. While active it also
// counts the entries of the pinned conntrack and endpoint maps (through
// their pins: the datapath's lock is not taken).
func (f *fastPath) Report() FastPathReport {
	f.mu.Lock()
	r := FastPathReport{Enabled: f.cfg.Enabled, State: f.state, Reason: f.reason, Mode: modeKernel}
	f.mu.Unlock()
	if f.dp == nil {
		return r
	}
	r.PinDir = f.cfg.PinDir
	r.Uplinks = slices.Clone(f.cfg.Uplinks)
	st := f.dp.Status()
	r.Attached = st.Attached
	if st.Err != nil && r.State == fastPathActive {
		r.LastErr = st.Err.Error()
	}
	if r.State == fastPathActive && !st.Loaded {
		r.State = fastPathStarting
	}
	for _, ifname := range st.Attached {
		if slices.Contains(f.cfg.Uplinks, ifname) {
			r.FromNetwork = append(r.FromNetwork, ifname)
		} else {
			r.FromEndpoint = append(r.FromEndpoint, ifname)
		}
	}
	slices.Sort(r.FromNetwork)
	slices.Sort(r.FromEndpoint)
	if r.State != fastPathActive {
		return r
	}
	r.Mode = modeEBPF
	p, err := datapath.OpenPinned(f.cfg.PinDir)
	if err != nil {
		r.MapsErr = err.Error()
		return r
	}
	defer p.Close()
	us, err := p.Usage()
	if err != nil {
		r.MapsErr = err.Error()
	}
	for _, u := range us {
		r.Maps = append(r.Maps, MapUsageReport{Map: u.Map, Entries: u.Entries, Capacity: u.Capacity})
	}
	return r
}

// datapathAdapter turns the agent's next hops into the datapath's.
type datapathAdapter struct{ d *datapath.Datapath }

func (a datapathAdapter) SetNextHops(ctx context.Context, nhs []agent.NextHop) error {
	out := make([]datapath.NextHop, 0, len(nhs))
	for _, nh := range nhs {
		// The neighbour table knows link-local gateways without a zone.
		out = append(out, datapath.NextHop{Gateway: nh.Gateway.WithZone(""), Uplink: nh.Link})
	}
	return a.d.SetNextHops(ctx, out)
}

// ctFullPercent is the conntrack fill level status warns at: past it the
// LRU starts evicting live flows under a burst of new ones.
const ctFullPercent = 90

// warnings are the fast path problems an operator should see in status.
func (r FastPathReport) warnings() []string {
	var out []string
	switch r.State {
	case fastPathUnavailable:
		return []string{"eBPF fast path unavailable, pod traffic on the kernel path: " + r.Reason}
	case fastPathActive:
	default:
		return nil
	}
	if r.LastErr != "" {
		out = append(out, "eBPF fast path: "+r.LastErr)
	}
	for _, u := range r.Uplinks {
		if !slices.Contains(r.FromNetwork, u) {
			out = append(out, fmt.Sprintf("eBPF fast path: no from-network program on uplink %s: traffic from the network takes the kernel path", u))
		}
	}
	if r.MapsErr != "" {
		out = append(out, "eBPF fast path: map usage: "+r.MapsErr)
	}
	for _, m := range r.Maps {
		if m.Capacity > 0 && m.Entries*100 >= m.Capacity*ctFullPercent && strings.HasPrefix(m.Map, "ct_") {
			out = append(out, fmt.Sprintf("conntrack map %s is %d%% full (%d of %d entries): new flows evict live ones",
				m.Map, m.Entries*100/m.Capacity, m.Entries, m.Capacity))
		}
	}
	return out
}
