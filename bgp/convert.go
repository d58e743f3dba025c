package bgp

import (
	"net/netip"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/podrouter/podrouter/health"
)

// Conversions between podrouter's types and GoBGP's: GoBGP's never leave
// this package.

// sessionState maps GoBGP's session state onto health's.
func sessionState(st api.PeerState_SessionState) health.SessionState {
	switch st {
	case api.PeerState_SESSION_STATE_IDLE:
		return health.SessionIdle
	case api.PeerState_SESSION_STATE_CONNECT:
		return health.SessionConnect
	case api.PeerState_SESSION_STATE_ACTIVE:
		return health.SessionActive
	case api.PeerState_SESSION_STATE_OPENSENT:
		return health.SessionOpenSent
	case api.PeerState_SESSION_STATE_OPENCONFIRM:
		return health.SessionOpenConfirm
	case api.PeerState_SESSION_STATE_ESTABLISHED:
		return health.SessionEstablished
	}
	return health.SessionUnknown
}

func adminState(st api.PeerState_AdminState) health.AdminState {
	switch st {
	case api.PeerState_ADMIN_STATE_DOWN:
		return health.AdminDown
	case api.PeerState_ADMIN_STATE_PFX_CT:
		return health.AdminPfxCt
	}
	return health.AdminUp
}

// bfdState names a BFD session state; BFDOff when the peer runs no BFD
// (GoBGP then reports UNSPECIFIED).
func bfdState(st *api.BfdPeerState) health.BFDState {
	switch st.GetSessionState() {
	case api.BfdSessionState_BFD_SESSION_STATE_UP:
		return health.BFDUp
	case api.BfdSessionState_BFD_SESSION_STATE_DOWN:
		return health.BFDDown
	case api.BfdSessionState_BFD_SESSION_STATE_INIT:
		return health.BFDInit
	case api.BfdSessionState_BFD_SESSION_STATE_ADMIN_DOWN:
		return health.BFDAdminDown
	}
	return health.BFDOff
}

func grState(gr *api.GracefulRestart) health.GRState {
	switch {
	case gr == nil || !gr.Enabled:
		return health.GRDisabled
	case gr.PeerRestarting:
		return health.GRPeerRestarting
	case gr.LocalRestarting:
		return health.GRLocalRestarting
	}
	return health.GREnabled
}

// toPeer converts GoBGP's view of one neighbour.
func toPeer(p *api.Peer) health.Peer {
	var ps health.Peer
	if st := p.State; st != nil {
		ps.Address, _ = netip.ParseAddr(st.NeighborAddress) // "" when unset: taken from Conf below
		ps.ASN = st.PeerAsn
		ps.State = sessionState(st.SessionState)
		ps.AdminState = adminState(st.AdminState)
		ps.Flaps = st.Flops
		if m := st.Messages; m != nil {
			if m.Received != nil {
				ps.UpdatesIn = m.Received.Update
			}
			if m.Sent != nil {
				ps.UpdatesOut = m.Sent.Update
			}
		}
		ps.BFD = bfdState(st.BfdState)
		if st.DisconnectReason != api.PeerState_DISCONNECT_REASON_UNSPECIFIED {
			ps.LastError = strings.TrimSpace(disconnectReason(st.DisconnectReason) + " " + st.DisconnectMessage)
		}
	}
	ps.GracefulRestart = grState(p.GracefulRestart)
	if !ps.Address.IsValid() && p.Conf != nil {
		ps.Address, _ = netip.ParseAddr(p.Conf.NeighborAddress) // configured by us: always valid
	}
	if t := p.Timers; t != nil && t.State != nil && t.State.Uptime != nil && ps.State == health.SessionEstablished {
		ps.Uptime = time.Since(t.State.Uptime.AsTime()).Truncate(time.Second)
	}
	for _, af := range p.AfiSafis {
		if af.State != nil {
			ps.Received += af.State.Received
			ps.Advertised += af.State.Advertised
		}
	}
	return ps
}

func fsmName(st bgp.FSMState) string {
	return strings.ToLower(strings.TrimPrefix(st.String(), "BGP_FSM_"))
}

func disconnectReason(r api.PeerState_DisconnectReason) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "DISCONNECT_REASON_"))
}

// nextHop is the next hop of a learned path, IPv4-mapped addresses unmapped.
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

// toAPIPeer converts one neighbour's configuration.
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
