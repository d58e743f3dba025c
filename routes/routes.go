package routes

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
)

// Family is an IP address family: 4 or 6.
type Family int

// Address families.
const (
	FamilyV4 Family = 4
	FamilyV6 Family = 6
)

func (f Family) String() string {
	switch f {
	case FamilyV4:
		return "ipv4"
	case FamilyV6:
		return "ipv6"
	default:
		return fmt.Sprintf("family(%d)", int(f))
	}
}

func (f Family) valid() bool { return f == FamilyV4 || f == FamilyV6 }

// Defaults applied by [New] to zero fields of [Config].
const (
	DefaultProtocol = 201
	DefaultTable    = 254 // main
	DefaultMetric   = 20  // like FRR's eBGP routes
)

// Config configures an [Installer]. Zero fields take the defaults above.
type Config struct {
	// Protocol is the rtnetlink protocol number marking podrouter's routes.
	// It must be 5..255: 0..4 are the kernel's own (unspec, redirect,
	// kernel, boot, static).
	Protocol int
	// Table is the routing table holding the default route (254 = main).
	// The local table (255) is refused.
	Table int
	// Metric is the route priority. A hand-placed static default (metric 0)
	// coexists with ours and wins. Zero means DefaultMetric.
	Metric int
	// NetNSPath names the network namespace to work in (for example
	// /run/netns/NAME). Empty means the namespace of the calling process.
	NetNSPath string
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Protocol == 0 {
		c.Protocol = DefaultProtocol
	}
	if c.Table == 0 {
		c.Table = DefaultTable
	}
	if c.Metric == 0 {
		c.Metric = DefaultMetric
	}
	return c
}

// validate checks a config that already has its defaults applied.
func (c Config) validate() error {
	var errs []error
	if c.Protocol < 5 || c.Protocol > 255 {
		errs = append(errs, fmt.Errorf("protocol %d: want 5..255 (0..4 are reserved by the kernel)", c.Protocol))
	}
	if c.Table < 1 || int64(c.Table) > math.MaxUint32 || c.Table == 255 {
		errs = append(errs, fmt.Errorf("table %d: want 1..%d, not the local table (255)", c.Table, uint32(math.MaxUint32)))
	}
	if c.Metric < 0 || int64(c.Metric) > math.MaxUint32 {
		errs = append(errs, fmt.Errorf("metric %d: want 0..%d", c.Metric, uint32(math.MaxUint32)))
	}
	return errors.Join(errs...)
}

// Kicker receives a non-blocking "something changed" signal.
type Kicker interface{ Kick() }

// NextHop is one next hop of podrouter's default route.
type NextHop struct {
	Gateway   netip.Addr // IPv6 link-local gateways carry the link as zone
	Link      string     // interface name
	LinkIndex int
}

func (n NextHop) String() string {
	return fmt.Sprintf("%v dev %s", n.Gateway.WithZone(""), n.Link)
}

// Reasons a next hop is skipped (SkippedNextHop.Reason).
const (
	ReasonInvalid      = "invalid address"
	ReasonWrongFamily  = "wrong address family"
	ReasonLocal        = "gateway is a local address"
	ReasonNotConnected = "not directly connected"
	ReasonNoLink       = "link not found"
	ReasonLinkDown     = "link down"            // administratively down
	ReasonNoCarrier    = "no carrier"           // up, but lower layer down
	ReasonNotOper      = "link not operational" // operstate neither up nor unknown
)

// SkippedNextHop is a requested gateway left out of the route.
type SkippedNextHop struct {
	Gateway netip.Addr
	Link    string // when known
	Reason  string // one of the Reason* constants
}

func (s SkippedNextHop) String() string {
	if s.Link != "" {
		return fmt.Sprintf("%v (%s: %s)", s.Gateway, s.Link, s.Reason)
	}
	return fmt.Sprintf("%v (%s)", s.Gateway, s.Reason)
}

// ErrForeignDefault reports that a default route podrouter does not own sits
// at podrouter's (table, metric) key, so podrouter's route is not installed.
var ErrForeignDefault = errors.New("foreign default route at podrouter's table and metric")

// Result is what SetDefault reached.
type Result struct {
	// Installed are the next hops of podrouter's default route in the
	// kernel after the call (empty when there is none).
	Installed []NextHop
	// Skipped are the requested gateways that are not usable.
	Skipped []SkippedNextHop
	// ForeignPresent is set when the table holds a default route that
	// podrouter does not own, at any metric.
	ForeignPresent bool
	// ForeignBlocking is set when such a route sits at podrouter's own
	// metric: podrouter's route is then not installed.
	ForeignBlocking bool
	// Changed is set when the call wrote to the kernel.
	Changed bool
}

// Err returns an error wrapping ErrForeignDefault when r.ForeignBlocking.
func (r Result) Err() error {
	if r.ForeignBlocking {
		return ErrForeignDefault
	}
	return nil
}

// Stats are the Installer's cumulative counters.
type Stats struct {
	Installs         uint64 // successful route add or replace
	Removals         uint64 // successful deletes of podrouter's routes
	DriftMissing     uint64 // our route was gone when we expected it
	DriftChanged     uint64 // our route had other next hops than we wrote
	ForeignSeen      uint64 // a foreign default appeared in the table
	Writes           uint64 // netlink writes attempted (add, replace, delete)
	WriteErrors      uint64 // netlink writes that failed
	DumpsInterrupted uint64 // dumps retried after NLM_F_DUMP_INTR
	Resubscriptions  uint64 // netlink subscriptions re-established
}

// normalizeGateways turns the requested gateways into a sorted, duplicate
// free list of candidates for family fam, reporting the ones that cannot be a
// gateway at all. IPv4-mapped IPv6 addresses count as IPv4.
func normalizeGateways(fam Family, gws []netip.Addr) ([]netip.Addr, []SkippedNextHop) {
	var out []netip.Addr
	var skipped []SkippedNextHop
	seen := make(map[netip.Addr]bool, len(gws))
	for _, gw := range gws {
		if gw.Is4In6() {
			gw = gw.Unmap()
		}
		if seen[gw] {
			continue
		}
		seen[gw] = true
		switch {
		case !gw.IsValid(), gw.IsUnspecified(), gw.IsLoopback(), gw.IsMulticast(),
			gw.Is4() && gw == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			skipped = append(skipped, SkippedNextHop{Gateway: gw, Reason: ReasonInvalid})
		case gw.Is4() != (fam == FamilyV4):
			skipped = append(skipped, SkippedNextHop{Gateway: gw, Reason: ReasonWrongFamily})
		case gw.Is4() && gw.Zone() != "":
			skipped = append(skipped, SkippedNextHop{Gateway: gw, Reason: ReasonInvalid})
		default:
			out = append(out, gw)
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int {
		return cmp.Or(a.WithZone("").Compare(b.WithZone("")), strings.Compare(a.Zone(), b.Zone()))
	})
	return out, skipped
}

// hopKey is what identifies a next hop in the kernel.
type hopKey struct {
	gw   netip.Addr // without zone
	link int
}

func keyOf(n NextHop) hopKey { return hopKey{gw: n.Gateway.WithZone(""), link: n.LinkIndex} }

// sortHops sorts next hops by gateway, then link index, in place.
func sortHops(hops []NextHop) {
	slices.SortFunc(hops, func(a, b NextHop) int {
		return cmp.Or(a.Gateway.WithZone("").Compare(b.Gateway.WithZone("")), cmp.Compare(a.LinkIndex, b.LinkIndex))
	})
}

// dedupeHops returns hops sorted and without duplicates.
func dedupeHops(hops []NextHop) []NextHop {
	out := slices.Clone(hops)
	sortHops(out)
	return slices.CompactFunc(out, func(a, b NextHop) bool { return keyOf(a) == keyOf(b) })
}

// sameHops reports whether a and b hold the same next hops, ignoring order,
// duplicates and zones.
func sameHops(a, b []NextHop) bool {
	a, b = dedupeHops(a), dedupeHops(b)
	return slices.EqualFunc(a, b, func(x, y NextHop) bool { return keyOf(x) == keyOf(y) })
}

func hopStrings(hops []NextHop) []string {
	out := make([]string, len(hops))
	for i, h := range hops {
		out[i] = h.String()
	}
	return out
}

func skippedStrings(s []SkippedNextHop) []string {
	out := make([]string, len(s))
	for i, h := range s {
		out[i] = h.String()
	}
	return out
}
