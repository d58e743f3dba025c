package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Config is the speaker's configuration, in net/netip terms.
type Config struct {
	RouterID        netip.Addr
	ASN             uint32
	ListenPort      int32 // -1: do not listen
	ListenAddresses []netip.Addr
	// APIAddress is the GoBGP gRPC endpoint for the stock gobgp CLI:
	// loopback "ip:port" or "unix:///path"; "" disables it.
	APIAddress string
	Peers      []PeerConfig
	// LogLevel is the level of GoBGP's own log lines (they are noisy at info).
	LogLevel slog.Level
	// Drain is how Drain takes the pod CIDRs away.
	Drain DrainConfig
}

// Drain modes.
const (
	// DrainWithdraw withdraws at once.
	DrainWithdraw = "withdraw"
	// DrainDeprefer first re-advertises the pod CIDRs made less preferred
	// (AS-path prepend, MED, the RFC 8326 GRACEFUL_SHUTDOWN community) so
	// that the fabric moves traffic to other paths while this one still
	// works, then withdraws after WithdrawAfter.
	DrainDeprefer = "deprefer"
)

// CommunityGracefulShutdown is RFC 8326's GRACEFUL_SHUTDOWN (65535:0).
const CommunityGracefulShutdown uint32 = 0xFFFF0000

// DrainConfig tunes Drain. The zero value withdraws at once.
type DrainConfig struct {
	Mode             string // DrainWithdraw ("" too) or DrainDeprefer
	ASPathPrepend    uint8  // deprefer: extra copies of the local ASN
	MED              uint32 // deprefer: MULTI_EXIT_DISC; 0: not sent
	GracefulShutdown bool   // deprefer: add the GRACEFUL_SHUTDOWN community
	WithdrawAfter    time.Duration
}

// PeerConfig is one neighbour.
type PeerConfig struct {
	Address           netip.Addr
	Port              uint16 // 0: 179
	ASN               uint32
	LocalAddress      netip.Addr
	HoldTime          time.Duration
	KeepaliveInterval time.Duration
	ConnectRetry      time.Duration
	EBGPMultihopTTL   uint8
	TTLMin            uint8
	Password          string
	GracefulRestart   bool
	RestartTime       time.Duration
	MaxPrefix         uint32
	MaxPrefixWarnPct  uint8
	MaxPrefixRestart  time.Duration
	BFD               BFDConfig
}

// BFDConfig is single-hop BFD (RFC 5880/5881) for a session, run by GoBGP:
// control packets to UDP 3784 with TTL 255, from a source port in
// 49152-65535; the peer is declared down after the peer's multiplier ×
// max(MinRx, the peer's MinTx) without a packet, and GoBGP then resets the
// BGP session. The zero value is off.
type BFDConfig struct {
	Enabled    bool
	MinTx      time.Duration // desired minimum transmit interval
	MinRx      time.Duration // required minimum receive interval
	Multiplier uint8         // detection multiplier
}

// Kicker is told that something the agent derives state from has changed.
type Kicker interface{ Kick() }

// PeerStatus is what an operator wants to know about one neighbour.
type PeerStatus struct {
	Address        netip.Addr
	ASN            uint32
	State          string // idle, connect, active, opensent, openconfirm, established
	AdminState     string // up, down, pfx_ct
	Uptime         time.Duration
	Received       uint64 // prefixes received (pre-policy Adj-RIB-In)
	Accepted       uint64 // prefixes accepted by the import policy
	Advertised     uint64
	MaxPrefixTrips uint64
	Flaps          uint32
	UpdatesIn      uint64 // UPDATE messages received
	UpdatesOut     uint64 // UPDATE messages sent
	// GracefulRestart is "disabled", "enabled", "peer-restarting" (we keep
	// its routes as stale) or "local-restarting".
	GracefulRestart string
	// BFD is the BFD session state: "" (BFD off for this peer), "down",
	// "init", "up" or "admin-down".
	BFD       string
	LastError string
}

// ErrNotRunning is returned by calls that need the speaker's server.
var ErrNotRunning = errors.New("bgp speaker not running")

// Speaker is the embedded GoBGP speaker.
type Speaker struct {
	cfg Config
	log *slog.Logger

	mu         sync.Mutex
	srv        *server.BgpServer
	desired    []netip.Prefix // what the agent wants advertised
	advertised []netip.Prefix // what is in the RIB now
	policyFor  []netip.Prefix // pod CIDRs the export policy was built for
	drained    bool           // advertise nothing
	depref     bool           // advertise with the drain's deprefer attributes
	advDepref  bool           // what is in the RIB carries them
	drainGen   uint64         // bumped by Drain/Undrain; stale withdraw timers check it
	drainTimer *time.Timer
	drainSince time.Time
	runCtx     context.Context // the context of the first Start, for restarts
	kicker     Kicker
	stopSrv    context.CancelFunc // ends the per-server goroutines
	peerState  map[netip.Addr]bgp.FSMState
	pfxTrips   map[netip.Addr]uint64
	lastReject map[netip.Addr]uint64

	bfdMu      sync.Mutex               // serialises syncBFD; taken before mu
	bfdApplied map[netip.Addr]BFDConfig // BFD running in GoBGP per peer; zero: off
}

// New validates cfg; it does no I/O.
func New(cfg Config, logger *slog.Logger) (*Speaker, error) {
	if !cfg.RouterID.Is4() {
		return nil, fmt.Errorf("router id %v: want an IPv4 address", cfg.RouterID)
	}
	if cfg.ASN == 0 {
		return nil, errors.New("local ASN 0")
	}
	for _, p := range cfg.Peers {
		if !p.Address.IsValid() || p.ASN == 0 {
			return nil, fmt.Errorf("peer %v: address and ASN are required", p.Address)
		}
		if p.KeepaliveInterval <= 0 || p.HoldTime <= p.KeepaliveInterval {
			return nil, fmt.Errorf("peer %v: keepalive %s must be below hold time %s", p.Address, p.KeepaliveInterval, p.HoldTime)
		}
		if b := p.BFD; b.Enabled && (b.MinTx < time.Millisecond || b.MinRx < time.Millisecond || b.Multiplier == 0) {
			return nil, fmt.Errorf("peer %v: bfd needs intervals of at least 1ms and a multiplier, got %+v", p.Address, b)
		}
	}
	return &Speaker{
		cfg:        cfg,
		log:        logger,
		peerState:  map[netip.Addr]bgp.FSMState{},
		pfxTrips:   map[netip.Addr]uint64{},
		lastReject: map[netip.Addr]uint64{},
	}, nil
}

// Start brings up the BGP server, its policies, the gRPC API and every peer.
// It returns once they are configured; sessions come up in the background.
// k is kicked whenever a session changes state or a peer sends an update.
func (s *Speaker) Start(ctx context.Context, k Kicker) error {
	s.mu.Lock()
	if s.runCtx == nil {
		s.runCtx, s.kicker = ctx, k
	}
	s.mu.Unlock()
	return s.start(ctx, k)
}

func (s *Speaker) start(parent context.Context, k Kicker) error {
	if err := preflightAPI(s.cfg.APIAddress); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(parent)
	lv := new(slog.LevelVar)
	lv.Set(s.cfg.LogLevel)
	gobgpLog := slog.New(levelHandler{s.log.Handler(), lv}).With("component", "gobgp")
	opts := []server.ServerOption{server.LoggerOption(gobgpLog, lv)}
	if s.cfg.APIAddress != "" {
		opts = append(opts, server.GrpcListenAddress(s.cfg.APIAddress))
	}
	srv := server.NewBgpServer(opts...)
	go srv.Serve()

	var listen []string
	for _, a := range s.cfg.ListenAddresses {
		listen = append(listen, a.String())
	}
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:             s.cfg.ASN,
		RouterId:        s.cfg.RouterID.String(),
		ListenPort:      s.cfg.ListenPort,
		ListenAddresses: listen,
	}}); err != nil {
		srv.Stop()
		cancel()
		return fmt.Errorf("start bgp: %w", err)
	}
	s.mu.Lock()
	s.srv, s.stopSrv = srv, cancel
	s.mu.Unlock()
	fail := func(err error) error {
		s.Close()
		return err
	}
	if err := s.applyPolicies(ctx, s.desiredSnapshot()); err != nil {
		return fail(err)
	}
	if err := srv.WatchEvent(ctx, server.WatchEventMessageCallbacks{
		OnPeerUpdate: func(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
			s.onPeer(ctx, ev, k)
		},
		OnPathUpdate: func([]*apiutil.Path, time.Time) { k.Kick() },
	}, server.WatchPeer(), server.WatchPostUpdate(false, "", "")); err != nil {
		return fail(fmt.Errorf("watch bgp events: %w", err))
	}
	s.bfdMu.Lock()
	s.bfdApplied = map[netip.Addr]BFDConfig{}
	s.bfdMu.Unlock()
	for _, p := range s.cfg.Peers {
		if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: toAPIPeer(withoutBFD(p))}); err != nil {
			return fail(fmt.Errorf("add peer %s: %w", p.Address, err))
		}
		s.log.Info("peer configured", "peer", p.Address, "peer_asn", p.ASN, "graceful_restart", p.GracefulRestart)
	}
	if strings.HasPrefix(s.cfg.APIAddress, "unix://") {
		restrictSocket(strings.TrimPrefix(s.cfg.APIAddress, "unix://"))
	}
	go s.summariseRejects(ctx)
	// Apply what the agent asked for before we were running.
	if err := s.SetAdvertisements(ctx, s.desiredSnapshot()); err != nil {
		return fail(err)
	}
	return nil
}

// preflightAPI fails early, with a clear message, when the gRPC endpoint
// cannot be bound (GoBGP itself would only log it). A stale unix socket left
// by a crashed instance is removed.
func preflightAPI(addr string) error {
	if addr == "" {
		return nil
	}
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		if c, err := net.Dial("unix", p); err == nil {
			c.Close()
			return fmt.Errorf("grpc api %s: another process is serving it", addr)
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("grpc api %s: remove stale socket: %w", addr, err)
		}
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("grpc api %s: %w", addr, err)
	}
	return l.Close()
}

// restrictSocket makes the gRPC unix socket owner-only once GoBGP made it.
func restrictSocket(path string) {
	for range 50 {
		if err := os.Chmod(path, 0o600); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *Speaker) desiredSnapshot() []netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.desired)
}

func (s *Speaker) server() *server.BgpServer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

func (s *Speaker) applyPolicies(ctx context.Context, pods []netip.Prefix) error {
	srv := s.server()
	if srv == nil {
		return ErrNotRunning
	}
	if err := srv.SetPolicies(ctx, buildPolicies(pods)); err != nil {
		return fmt.Errorf("set bgp policies: %w", err)
	}
	for _, a := range assignments() {
		if err := srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: a}); err != nil {
			return fmt.Errorf("assign bgp policy %s: %w", a.Policies[0].Name, err)
		}
	}
	s.mu.Lock()
	s.policyFor = slices.Clone(pods)
	s.mu.Unlock()
	return nil
}

// SetAdvertisements makes the set of locally originated prefixes exactly
// prefixes (the node's pod CIDRs). Idempotent. Before Start it only records
// the wish; after Drain it records it and advertises nothing.
func (s *Speaker) SetAdvertisements(ctx context.Context, prefixes []netip.Prefix) error {
	s.mu.Lock()
	s.desired = slices.Clone(prefixes)
	srv, drained, have, policyFor := s.srv, s.drained, slices.Clone(s.advertised), s.policyFor
	depref, advDepref := s.depref && !s.drained, s.advDepref
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	want := prefixes
	if drained {
		want = nil
	}
	if samePrefixes(want, have) && depref == advDepref {
		return nil
	}
	var add, del []netip.Prefix
	for _, p := range want {
		// A change of attributes re-advertises (an implicit replace).
		if !slices.Contains(have, p) || depref != advDepref {
			add = append(add, p)
		}
	}
	for _, p := range have {
		if !slices.Contains(want, p) {
			del = append(del, p)
		}
	}
	// Export policy first covers old and new, so that nothing is dropped
	// between adding the new and withdrawing the old.
	union := slices.Clone(have)
	for _, p := range add {
		if !slices.Contains(union, p) {
			union = append(union, p)
		}
	}
	if !samePrefixes(union, policyFor) {
		if err := s.applyPolicies(ctx, union); err != nil {
			return err
		}
	}
	var errs []error
	var extra []bgp.PathAttributeInterface
	if depref {
		extra = s.deprefAttrs()
	}
	addFailed := false
	for _, p := range add {
		path, err := localPath(p, false, extra...)
		if err == nil {
			_, err = srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("advertise %s: %w", p, err))
			addFailed = true
			continue
		}
		if !slices.Contains(have, p) {
			have = append(have, p)
		}
		if depref {
			s.log.Info("prefix advertised depreferred (draining)", "prefix", p)
		} else {
			s.log.Info("prefix advertised", "prefix", p)
		}
	}
	for _, p := range del {
		path, err := localPath(p, true)
		if err == nil {
			err = srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{path}})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("withdraw %s: %w", p, err))
			continue
		}
		have = slices.DeleteFunc(have, func(q netip.Prefix) bool { return q == p })
		s.log.Info("prefix withdrawn", "prefix", p)
	}
	s.mu.Lock()
	s.advertised = have
	if !addFailed {
		s.advDepref = depref
	}
	s.mu.Unlock()
	if !samePrefixes(have, union) {
		if err := s.applyPolicies(ctx, have); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Advertised returns the prefixes currently originated.
func (s *Speaker) Advertised() []netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.advertised)
}

// deprefAttrs are the path attributes of a depreferred (draining)
// advertisement. GoBGP prepends the local ASN once more on export.
func (s *Speaker) deprefAttrs() []bgp.PathAttributeInterface {
	s.mu.Lock()
	d, asn := s.cfg.Drain, s.cfg.ASN
	s.mu.Unlock()
	var attrs []bgp.PathAttributeInterface
	if d.ASPathPrepend > 0 {
		path := make([]uint32, d.ASPathPrepend)
		for i := range path {
			path[i] = asn
		}
		attrs = append(attrs, bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{
			bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, path),
		}))
	}
	if d.MED > 0 {
		attrs = append(attrs, bgp.NewPathAttributeMultiExitDisc(d.MED))
	}
	if d.GracefulShutdown {
		attrs = append(attrs, bgp.NewPathAttributeCommunities([]uint32{CommunityGracefulShutdown}))
	}
	return attrs
}

func localPath(p netip.Prefix, withdraw bool, extra ...bgp.PathAttributeInterface) (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(p)
	if err != nil {
		return nil, err
	}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	attrs = append(attrs, extra...)
	fam := bgp.RF_IPv4_UC
	if p.Addr().Is4() {
		nh, err := bgp.NewPathAttributeNextHop(netip.IPv4Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, nh)
	} else {
		fam = bgp.RF_IPv6_UC
		mp, err := bgp.NewPathAttributeMpReachNLRI(fam, []bgp.PathNLRI{{NLRI: nlri}}, netip.IPv6Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, mp)
	}
	return &apiutil.Path{Family: fam, Nlri: nlri, Attrs: attrs, Withdrawal: withdraw, Age: time.Now().Unix()}, nil
}

// Defaults returns the next hops of every default route peers offer now
// (the multipath set, stale graceful-restart paths included), per family.
func (s *Speaker) Defaults(ctx context.Context) (v4, v6 []netip.Addr, err error) {
	srv := s.server()
	if srv == nil {
		return nil, nil, ErrNotRunning
	}
	list := func(fam bgp.Family, prefix netip.Prefix) ([]netip.Addr, error) {
		var out []netip.Addr
		err := srv.ListPath(apiutil.ListPathRequest{
			TableType: api.TableType_TABLE_TYPE_GLOBAL,
			Family:    fam,
			Prefixes:  []*apiutil.LookupPrefix{{Prefix: prefix.String(), LookupOption: apiutil.LOOKUP_EXACT}},
		}, func(_ bgp.NLRI, paths []*apiutil.Path) {
			for _, p := range paths {
				if p.Withdrawal || p.Filtered || p.IsNexthopInvalid || !p.PeerAddress.IsValid() {
					continue
				}
				if nh := nextHop(p); nh.IsValid() && !slices.Contains(out, nh) {
					out = append(out, nh)
				}
			}
		})
		slices.SortFunc(out, netip.Addr.Compare)
		return out, err
	}
	if v4, err = list(bgp.RF_IPv4_UC, defaultV4); err != nil {
		return nil, nil, fmt.Errorf("list ipv4 default: %w", err)
	}
	if v6, err = list(bgp.RF_IPv6_UC, defaultV6); err != nil {
		return nil, nil, fmt.Errorf("list ipv6 default: %w", err)
	}
	return v4, v6, nil
}

func nextHop(p *apiutil.Path) netip.Addr {
	for _, a := range p.Attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeNextHop:
			return a.Value.Unmap()
		case *bgp.PathAttributeMpReachNLRI:
			if a.Nexthop.IsValid() && !a.Nexthop.IsUnspecified() {
				return a.Nexthop.Unmap()
			}
			return a.LinkLocalNexthop
		}
	}
	return netip.Addr{}
}

// Drain takes the pod CIDRs away and keeps sessions up; later
// SetAdvertisements calls advertise nothing (or only depreferred paths)
// until Undrain. In DrainDeprefer mode it re-advertises them depreferred
// now and withdraws them WithdrawAfter later, in the background; a second
// Drain while that runs changes nothing.
func (s *Speaker) Drain(ctx context.Context) error {
	s.mu.Lock()
	d := s.cfg.Drain
	if d.Mode != DrainDeprefer || d.WithdrawAfter <= 0 {
		s.drained = true
		s.mu.Unlock()
		return s.SetAdvertisements(ctx, s.desiredSnapshot())
	}
	if s.depref || s.drained {
		s.mu.Unlock()
		return nil
	}
	s.depref, s.drainSince = true, time.Now()
	s.drainGen++
	gen := s.drainGen
	s.drainTimer = time.AfterFunc(d.WithdrawAfter, func() { s.withdrawAfterDeprefer(gen) })
	s.mu.Unlock()
	s.log.Info("draining: pod CIDRs depreferred, withdrawn after", "withdraw_after", d.WithdrawAfter,
		"as_path_prepend", d.ASPathPrepend, "med", d.MED, "graceful_shutdown_community", d.GracefulShutdown)
	return s.SetAdvertisements(ctx, s.desiredSnapshot())
}

func (s *Speaker) withdrawAfterDeprefer(gen uint64) {
	s.mu.Lock()
	if gen != s.drainGen || s.drained {
		s.mu.Unlock()
		return
	}
	s.drained = true
	k := s.kicker
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.SetAdvertisements(ctx, s.desiredSnapshot()); err != nil {
		s.log.Error("drain: withdraw after deprefer", "err", err)
	} else {
		s.log.Info("drain: depreferred pod CIDRs withdrawn")
	}
	if k != nil {
		k.Kick()
	}
}

// DrainAndWait drains and, in DrainDeprefer mode, returns once the pod
// CIDRs are withdrawn (or ctx ends: then it withdraws at once).
func (s *Speaker) DrainAndWait(ctx context.Context) error {
	if err := s.Drain(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	gen, wait := s.drainGen, time.Until(s.drainSince.Add(s.cfg.Drain.WithdrawAfter))
	pending := !s.drained
	s.mu.Unlock()
	if pending {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
		s.withdrawAfterDeprefer(gen)
	}
	return nil
}

// DrainState is "" (advertising normally), "depreferred" (draining in
// DrainDeprefer mode; WithdrawIn says when they go) or "withdrawn".
func (s *Speaker) DrainState() (state string, withdrawIn time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.drained:
		return "withdrawn", 0
	case s.depref:
		return "depreferred", max(0, time.Until(s.drainSince.Add(s.cfg.Drain.WithdrawAfter)))
	}
	return "", 0
}

// Undrain re-advertises the desired prefixes with their normal attributes.
func (s *Speaker) Undrain(ctx context.Context) error {
	s.mu.Lock()
	s.drained, s.depref = false, false
	s.drainGen++
	if s.drainTimer != nil {
		s.drainTimer.Stop()
		s.drainTimer = nil
	}
	s.mu.Unlock()
	return s.SetAdvertisements(ctx, s.desiredSnapshot())
}

// Close stops the server: every session gets a NOTIFICATION (Cease), so
// peers flush our routes at once. Use it for drain/shutdown only; a restart
// must instead exit without it so graceful restart keeps our routes.
func (s *Speaker) Close() {
	s.mu.Lock()
	srv, stop := s.srv, s.stopSrv
	s.srv, s.stopSrv = nil, nil
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	if srv != nil {
		srv.Stop()
	}
}

func (s *Speaker) onPeer(ctx context.Context, ev *apiutil.WatchEventMessage_PeerEvent, k Kicker) {
	st := ev.Peer.State
	addr := st.NeighborAddress
	if !addr.IsValid() {
		addr = ev.Peer.Conf.NeighborAddress
	}
	s.mu.Lock()
	prev, known := s.peerState[addr]
	s.peerState[addr] = st.SessionState
	tripped := false
	if st.AdminState == api.PeerState_ADMIN_STATE_PFX_CT && prev == bgp.BGP_FSM_ESTABLISHED {
		s.pfxTrips[addr]++
		tripped = true
	}
	s.mu.Unlock()
	if ev.Type == apiutil.PEER_EVENT_STATE && (!known || prev != st.SessionState) {
		log := s.log.With("peer", addr, "peer_asn", st.PeerASN)
		switch {
		case st.SessionState == bgp.BGP_FSM_ESTABLISHED:
			log.Info("peer up", "router_id", st.RouterID)
		case prev == bgp.BGP_FSM_ESTABLISHED:
			log.Warn("peer down", "state", fsmName(st.SessionState), "reason", disconnectReason(st.DisconnectReason), "message", st.DisconnectMessage)
		default:
			log.Debug("peer state", "state", fsmName(st.SessionState))
		}
	}
	if ev.Type == apiutil.PEER_EVENT_STATE && (!known || prev != st.SessionState) {
		switch {
		case st.SessionState == bgp.BGP_FSM_ESTABLISHED:
			time.AfterFunc(bfdStartDelay, func() { s.syncBFD(ctx, addr) })
		case known && prev == bgp.BGP_FSM_ESTABLISHED:
			go s.syncBFD(ctx, addr) // never call GoBGP from its event callback
		}
	}
	if tripped {
		s.maxPrefixBackoff(ctx, addr)
	}
	k.Kick()
}

// maxPrefixBackoff re-enables a peer that tripped its max-prefix limit after
// the configured back-off, so one burst never leaves a ToR down for good.
func (s *Speaker) maxPrefixBackoff(ctx context.Context, addr netip.Addr) {
	wait := time.Minute
	s.mu.Lock()
	peers := s.cfg.Peers
	s.mu.Unlock()
	for _, p := range peers {
		if p.Address == addr && p.MaxPrefixRestart > 0 {
			wait = p.MaxPrefixRestart
		}
	}
	s.log.Warn("peer exceeded max-prefix, session closed", "peer", addr, "retry_in", wait)
	time.AfterFunc(wait, func() {
		srv := s.server()
		if ctx.Err() != nil || srv == nil {
			return
		}
		if err := srv.EnablePeer(ctx, &api.EnablePeerRequest{Address: addr.String()}); err != nil {
			s.log.Error("re-enable peer after max-prefix back-off", "peer", addr, "err", err)
			return
		}
		s.log.Info("peer re-enabled after max-prefix back-off", "peer", addr)
	})
}

// summariseRejects logs, when it changes, how many prefixes each peer sent
// that the import policy rejected: one line, not one per prefix.
func (s *Speaker) summariseRejects(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		peers, err := s.Peers(ctx)
		if err != nil {
			continue
		}
		for _, p := range peers {
			rej := p.Received - min(p.Accepted, p.Received)
			s.mu.Lock()
			last := s.lastReject[p.Address]
			s.lastReject[p.Address] = rej
			s.mu.Unlock()
			if rej != last {
				s.log.Info("prefixes rejected by import policy", "peer", p.Address, "rejected", rej, "received", p.Received, "accepted", p.Accepted)
			}
		}
	}
}

// Peers lists every configured neighbour with its state and counters.
func (s *Speaker) Peers(ctx context.Context) ([]PeerStatus, error) {
	srv := s.server()
	if srv == nil {
		return nil, ErrNotRunning
	}
	var out []PeerStatus
	err := srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		ps := PeerStatus{}
		if p.State != nil {
			ps.Address, _ = netip.ParseAddr(p.State.NeighborAddress)
			ps.ASN = p.State.PeerAsn
			ps.State = strings.ToLower(strings.TrimPrefix(p.State.SessionState.String(), "SESSION_STATE_"))
			ps.AdminState = strings.ToLower(strings.TrimPrefix(p.State.AdminState.String(), "ADMIN_STATE_"))
			ps.Flaps = p.State.Flops
			if m := p.State.Messages; m != nil {
				if m.Received != nil {
					ps.UpdatesIn = m.Received.Update
				}
				if m.Sent != nil {
					ps.UpdatesOut = m.Sent.Update
				}
			}
			ps.BFD = bfdState(p.State.BfdState)
			if p.State.DisconnectReason != api.PeerState_DISCONNECT_REASON_UNSPECIFIED {
				ps.LastError = strings.TrimSpace(disconnectReason(p.State.DisconnectReason) + " " + p.State.DisconnectMessage)
			}
		}
		ps.GracefulRestart = "disabled"
		if gr := p.GracefulRestart; gr != nil && gr.Enabled {
			switch {
			case gr.PeerRestarting:
				ps.GracefulRestart = "peer-restarting"
			case gr.LocalRestarting:
				ps.GracefulRestart = "local-restarting"
			default:
				ps.GracefulRestart = "enabled"
			}
		}
		if !ps.Address.IsValid() && p.Conf != nil {
			ps.Address, _ = netip.ParseAddr(p.Conf.NeighborAddress)
		}
		if p.Timers != nil && p.Timers.State != nil && p.Timers.State.Uptime != nil && ps.State == "established" {
			ps.Uptime = time.Since(p.Timers.State.Uptime.AsTime()).Truncate(time.Second)
		}
		for _, af := range p.AfiSafis {
			if af.State != nil {
				ps.Received += af.State.Received
				ps.Advertised += af.State.Advertised
			}
		}
		out = append(out, ps)
	})
	if err != nil {
		return nil, err
	}
	// GoBGP's per-peer "accepted" ignores the global import policy; count
	// what actually made it into the Loc-RIB instead. The Loc-RIB holds
	// only defaults and our own prefixes, so this walk is short.
	accepted := map[netip.Addr]uint64{}
	for _, fam := range []bgp.Family{bgp.RF_IPv4_UC, bgp.RF_IPv6_UC} {
		err = srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: fam},
			func(_ bgp.NLRI, paths []*apiutil.Path) {
				for _, p := range paths {
					if p.PeerAddress.IsValid() && !p.Withdrawal {
						accepted[p.PeerAddress.Unmap()]++
					}
				}
			})
		if err != nil {
			return nil, fmt.Errorf("list loc-rib: %w", err)
		}
	}
	s.mu.Lock()
	for i := range out {
		out[i].MaxPrefixTrips = s.pfxTrips[out[i].Address]
		out[i].Accepted = accepted[out[i].Address]
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b PeerStatus) int { return a.Address.Compare(b.Address) })
	return out, err
}

func fsmName(st bgp.FSMState) string {
	return strings.ToLower(strings.TrimPrefix(st.String(), "BGP_FSM_"))
}

func disconnectReason(r api.PeerState_DisconnectReason) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "DISCONNECT_REASON_"))
}

func toAPIPeer(p PeerConfig) *api.Peer {
	fam := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	if p.Address.Is6() {
		fam = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	}
	secs := func(d time.Duration) uint64 { return uint64(d / time.Second) }
	afi := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: fam, Enabled: true}}
	peer := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.ASN,
			AuthPassword:    p.Password,
			Description:     "podrouter upstream",
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:      secs(p.ConnectRetry),
			HoldTime:          secs(p.HoldTime),
			KeepaliveInterval: secs(p.KeepaliveInterval),
			// A session we reset (BFD down does, with Cease/Administrative
			// Reset) would otherwise stay Idle for GoBGP's default 30 s.
			IdleHoldTimeAfterReset: secs(idleHoldAfterReset),
		}},
		Transport: &api.Transport{RemotePort: uint32(p.Port)},
		AfiSafis:  []*api.AfiSafi{afi},
	}
	if p.LocalAddress.IsValid() {
		peer.Transport.LocalAddress = p.LocalAddress.String()
	}
	if p.EBGPMultihopTTL > 0 {
		peer.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(p.EBGPMultihopTTL)}
	}
	if p.TTLMin > 0 {
		peer.TtlSecurity = &api.TtlSecurity{Enabled: true, TtlMin: uint32(p.TTLMin)}
	}
	if p.GracefulRestart {
		peer.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: uint32(p.RestartTime / time.Second)}
		afi.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
	}
	if b := p.BFD; b.Enabled {
		// GoBGP takes the intervals in microseconds (RFC 5880's unit);
		// Port 0 sends to 3784, the RFC 5881 single-hop port.
		peer.Bfd = &api.BfdPeerConfig{
			Enabled:                  true,
			DesiredMinimumTxInterval: uint32(b.MinTx / time.Microsecond),
			RequiredMinimumReceive:   uint32(b.MinRx / time.Microsecond),
			DetectionMultiplier:      uint32(b.Multiplier),
		}
	}
	if p.MaxPrefix > 0 {
		afi.PrefixLimits = &api.PrefixLimit{Family: fam, MaxPrefixes: p.MaxPrefix, ShutdownThresholdPct: uint32(p.MaxPrefixWarnPct)}
	}
	return peer
}

// levelHandler raises the minimum level of GoBGP's own (chatty) log lines.
type levelHandler struct {
	slog.Handler
	min slog.Leveler
}

func (h levelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min.Level() && h.Handler.Enabled(ctx, l)
}

func (h levelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return levelHandler{h.Handler.WithAttrs(as), h.min}
}

func (h levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{h.Handler.WithGroup(name), h.min}
}
