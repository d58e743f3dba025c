package datapath

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Defaults and limits of Config.
const (
	// DefaultPinDir is where maps and links are pinned unless Config.PinDir says otherwise.
	DefaultPinDir = "/sys/fs/bpf/podrouter"
	// DefaultCTSizeTCP and DefaultCTSizeOther are the conntrack map sizes
	// for a zero Config.CTSizeTCP and CTSizeOther.
	DefaultCTSizeTCP   = 262144
	DefaultCTSizeOther = 65536
	// MaxCTSize bounds each conntrack map.
	MaxCTSize = 1 << 24
	// MaxPrefixes bounds Config.PassCIDRs and NextHopCIDRs (PR_LPM_MAX in
	// bpf/lib/maps.h).
	MaxPrefixes = maxLPM
)

// ErrUnavailable wraps every failure to load or attach the BPF programs: the
// caller logs it and keeps the kernel forwarding path.
var ErrUnavailable = errors.New("ebpf fast path unavailable")

// ErrNotRunning is returned by readers before Run has loaded the programs.
var ErrNotRunning = errors.New("datapath not running")

// Config is the static configuration of the fast path.
type Config struct {
	// PinDir is the bpffs directory holding every pinned map and link
	// (default DefaultPinDir). Lab nodes sharing one bpffs need distinct dirs.
	PinDir string
	// Uplinks are the node's uplink interfaces (from-network is attached there).
	Uplinks []string
	// PodCIDRs are this node's pod prefixes at start; endpoint discovery
	// looks for /32 and /128 routes inside them. SetPodCIDRs replaces them
	// while running.
	PodCIDRs []netip.Prefix
	// NodeAddrs are addresses of the node itself: traffic to them goes to
	// the stack. Addresses found on the uplinks are added automatically.
	NodeAddrs []netip.Addr
	// PassCIDRs are destinations always handed to the stack (e.g. the
	// Kubernetes service CIDR, which kube-proxy translates). They are the
	// static part of the set: SetPassCIDRs adds learned ones live.
	PassCIDRs []netip.Prefix
	// KernelConntrack says which new flows the fast path hands to the
	// kernel stack after looking them up in nf_conntrack (default
	// KernelCTNAT: those netfilter translates).
	KernelConntrack KernelCTMode
	// NextHopCIDRs, when set, limits the cached next hop to these
	// destinations (e.g. the cluster's pod supernet); others use the FIB.
	NextHopCIDRs []netip.Prefix
	// CTSizeTCP and CTSizeOther are the conntrack map sizes (defaults
	// DefaultCTSizeTCP, DefaultCTSizeOther).
	CTSizeTCP, CTSizeOther int
	// CTTimeouts are the conntrack lifetimes; zero fields take defaults.
	CTTimeouts CTTimeouts
	// DisableDiscovery turns off netlink endpoint discovery; only
	// SetEndpoints then defines endpoints.
	DisableDiscovery bool
	// ResyncInterval is the period of the safety-net reconcile (default 10s).
	ResyncInterval time.Duration
	// GCInterval is the period of the conntrack GC (default 30s).
	GCInterval time.Duration
	// GuardInterval is the period of the drift guard (default 500ms): the
	// endpoint, node-address and pass-prefix maps are compared with what
	// was last written and every hook is checked to still be attached;
	// what someone else changed is put back and counted (Status.Repaired*).
	GuardInterval time.Duration
}

// KernelCTMode selects the flows that go through the kernel stack because
// nf_conntrack knows them. The fast path asks nf_conntrack (the
// bpf_skb_ct_lookup kfunc) on every conntrack miss and remembers the answer
// in its own entry.
type KernelCTMode uint8

const (
	// KernelCTNAT sends flows that netfilter translates (SNAT, DNAT:
	// kube-proxy's iptables and nftables modes) through the stack.
	KernelCTNAT KernelCTMode = iota
	// KernelCTAny sends every flow nf_conntrack knows through the stack:
	// for proxies that translate without nf_nat's status bits (kube-proxy's
	// IPVS mode with conntrack on). Costs the fast path for any flow the
	// stack saw first.
	KernelCTAny
)

func (m KernelCTMode) String() string {
	switch m {
	case KernelCTNAT:
		return "nat"
	case KernelCTAny:
		return "any"
	}
	return fmt.Sprintf("KernelCTMode(%d)", uint8(m))
}

func (m KernelCTMode) validate() error {
	if m > KernelCTAny {
		return fmt.Errorf("kernel conntrack mode %s: unknown", m)
	}
	return nil
}

// CTTimeouts are conntrack entry lifetimes.
type CTTimeouts struct {
	TCPSyn, TCPEstablished, TCPClosing, UDP, ICMP time.Duration
}

// Endpoint is a local pod reachable through a host-side veth.
type Endpoint struct {
	ID      uint32           // daemon-chosen id (events); 0 = use IfIndex
	IfName  string           // host-side veth name
	IfIndex int              // host-side veth ifindex
	HostMAC net.HardwareAddr // MAC of the host-side veth
	PodMAC  net.HardwareAddr // MAC of the pod's interface
	Addrs   []netip.Addr     // pod addresses (IPv4 and/or IPv6)
}

// NextHop is one member of the default route's ECMP set.
type NextHop struct {
	Gateway netip.Addr       // next-hop address; its family selects the slot set
	Uplink  string           // interface towards the gateway
	SrcMAC  net.HardwareAddr // uplink MAC; resolved when empty
	DstMAC  net.HardwareAddr // gateway MAC; resolved from the neighbour table when empty
}

// Counter is one (direction, reason) counter summed over CPUs.
type Counter struct {
	Direction string // "from-endpoint" or "from-network"
	Reason    string // e.g. "fwd-redirect-peer", "pass-ttl", "drop-malformed"
	Packets   uint64
	Bytes     uint64
}

// CTEntry is one conntrack entry, oriented as the flow's originator sent it.
type CTEntry struct {
	Proto     uint8 // IP protocol number
	Src, Dst  netip.AddrPort
	Packets   [2]uint64 // [original, reply]
	Bytes     [2]uint64
	Expires   time.Duration // remaining lifetime (negative: expired, GC pending)
	Age       time.Duration
	SeenReply bool
	Closing   bool
	// Stack: every packet of the flow goes to the kernel stack, because
	// nf_conntrack translates it (a Service) or knows it (KernelCTAny).
	Stack        bool
	IngressIndex int
}

// Status is the fast path's state, for logs and /readyz.
type Status struct {
	Loaded   bool     // programs loaded and maps pinned
	Err      error    // last load/attach error (wraps ErrUnavailable) or nil
	Attached []string // interfaces with a program attached
	// Conntrack GC: runs so far, entries removed, duration of the last run.
	GCRuns, GCRemoved uint64
	GCLastDuration    time.Duration
	// Drift repaired by the guard: map entries someone else changed or
	// deleted (endpoints, node addresses, pass prefixes), and hooks found
	// detached and attached again.
	RepairedEntries, RepairedHooks uint64
}

// Datapath is the live fast path built from a Config.
type Datapath struct {
	cfg Config
	log *slog.Logger

	kick chan struct{}

	mu          sync.Mutex
	podCIDRs    []netip.Prefix // where endpoints are discovered (Config.PodCIDRs, SetPodCIDRs)
	explicitEPs []Endpoint     // last SetEndpoints input
	nextHops    []NextHop      // last SetNextHops input
	passCIDRs   []netip.Prefix // last SetPassCIDRs input
	kctMode     KernelCTMode   // last SetKernelConntrack input (Config.KernelConntrack at first)
	podMACs     podMACs        // pod MACs seen in the neighbour table (Linux)
	status      Status
	impl        *loaded // non-nil while Run holds loaded objects (Linux)
}

// New validates cfg and returns a Datapath; it does no I/O.
func New(cfg Config, logger *slog.Logger) (*Datapath, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Datapath{cfg: cfg, log: logger, kick: make(chan struct{}, 1), podCIDRs: slices.Clone(cfg.PodCIDRs), kctMode: cfg.KernelConntrack}, nil
}

func (c Config) withDefaults() Config {
	if c.PinDir == "" {
		c.PinDir = DefaultPinDir
	}
	if c.CTSizeTCP == 0 {
		c.CTSizeTCP = DefaultCTSizeTCP
	}
	if c.CTSizeOther == 0 {
		c.CTSizeOther = DefaultCTSizeOther
	}
	t := &c.CTTimeouts
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&t.TCPSyn, 60*time.Second)
	def(&t.TCPEstablished, 6*time.Hour)
	def(&t.TCPClosing, 10*time.Second)
	def(&t.UDP, 60*time.Second)
	def(&t.ICMP, 30*time.Second)
	if c.ResyncInterval == 0 {
		c.ResyncInterval = 10 * time.Second
	}
	if c.GuardInterval == 0 {
		c.GuardInterval = 500 * time.Millisecond
	}
	if c.GCInterval == 0 {
		c.GCInterval = 30 * time.Second
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if !filepath.IsAbs(c.PinDir) {
		errs = append(errs, fmt.Errorf("pin dir %q: not an absolute path", c.PinDir))
	}
	if c.CTSizeTCP < 1 || c.CTSizeOther < 1 || c.CTSizeTCP > MaxCTSize || c.CTSizeOther > MaxCTSize {
		errs = append(errs, fmt.Errorf("conntrack sizes %d/%d: want 1..%d", c.CTSizeTCP, c.CTSizeOther, MaxCTSize))
	}
	errs = append(errs, validPodCIDRs(c.PodCIDRs))
	for _, l := range [][]netip.Prefix{c.PassCIDRs, c.NextHopCIDRs} {
		errs = append(errs, validatePrefixes(l))
	}
	errs = append(errs, c.KernelConntrack.validate())
	for _, u := range c.Uplinks {
		if u == "" || len(u) > 15 {
			errs = append(errs, fmt.Errorf("uplink %q: invalid interface name", u))
		}
	}
	for _, d := range []time.Duration{c.CTTimeouts.TCPSyn, c.CTTimeouts.TCPEstablished,
		c.CTTimeouts.TCPClosing, c.CTTimeouts.UDP, c.CTTimeouts.ICMP, c.ResyncInterval, c.GCInterval, c.GuardInterval} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("negative duration %s", d))
		}
	}
	return errors.Join(errs...)
}

// validatePrefixes checks one LPM map's prefixes: valid, not IPv4-mapped
// IPv6 (ambiguous family), at most maxLPM distinct ones.
func validatePrefixes(l []netip.Prefix) error {
	var errs []error
	for _, p := range l {
		switch {
		case !p.IsValid():
			errs = append(errs, fmt.Errorf("prefix %s: invalid", p))
		case p.Addr().Is4In6():
			errs = append(errs, fmt.Errorf("prefix %s: IPv4-mapped IPv6, write the IPv4 prefix", p))
		}
	}
	if len(errs) == 0 {
		if n := len(mergePrefixes(l)); n > maxLPM {
			errs = append(errs, fmt.Errorf("%d prefixes: at most %d", n, maxLPM))
		}
	}
	return errors.Join(errs...)
}

func validPodCIDRs(ps []netip.Prefix) error {
	var errs []error
	for _, p := range ps {
		if !p.IsValid() || p != p.Masked() {
			errs = append(errs, fmt.Errorf("pod cidr %s: not a masked prefix", p))
		}
	}
	return errors.Join(errs...)
}

// mergePrefixes returns the distinct masked prefixes of the lists, sorted.
func mergePrefixes(lists ...[]netip.Prefix) []netip.Prefix {
	seen := map[netip.Prefix]bool{}
	var out []netip.Prefix
	for _, l := range lists {
		for _, p := range l {
			if p = p.Masked(); !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
	})
	return out
}

// SetPodCIDRs replaces the node's pod prefixes (whole desired state), for
// pod CIDRs that arrive or change after start (Kubernetes assigns them to
// the Node): endpoints are discovered inside them from now on. Applied now
// when running, else at Run; the same set again is a no-op.
func (d *Datapath) SetPodCIDRs(ctx context.Context, ps []netip.Prefix) error {
	if err := validPodCIDRs(ps); err != nil {
		return err
	}
	d.mu.Lock()
	same := slices.Equal(d.podCIDRs, ps)
	d.podCIDRs = slices.Clone(ps)
	d.mu.Unlock()
	if same {
		return nil
	}
	d.log.Info("pod cidrs set", "pod_cidrs", ps)
	return d.applyNow(ctx)
}

// pods returns the pod prefixes endpoints are discovered in.
func (d *Datapath) pods() []netip.Prefix {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.podCIDRs)
}

// Status returns the current state of the fast path.
func (d *Datapath) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.status
	s.Attached = append([]string(nil), s.Attached...)
	return s
}

func (d *Datapath) trigger() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

const maxLPM = 256 // PR_LPM_MAX in bpf/lib/maps.h

// Reason names, indexed by enum pr_reason.
var reasonNames = [...]string{
	"fwd-redirect-peer", "fwd-nexthop", "fwd-redirect-neigh",
	"pass-not-ip", "pass-fragment", "pass-ip-options", "pass-ipv6-exthdr", "pass-ttl",
	"pass-proto", "pass-icmp-ctrl", "pass-non-unicast", "pass-node-local",
	"pass-not-endpoint", "pass-fib", "pass-prefix", "pass-nat",
	"drop-malformed", "drop-redirect",
}

var dirNames = [...]string{"from-endpoint", "from-network"}
