package bgp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
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
	// LongLivedStale > 0 adds RFC 9494 long-lived graceful restart (with
	// GracefulRestart): stale routes are kept this much longer, as
	// LLGR_STALE, after the restart time runs out.
	LongLivedStale   time.Duration
	MaxPrefix        uint32
	MaxPrefixWarnPct uint8
	MaxPrefixRestart time.Duration
	BFD              BFDConfig
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

// ErrNotRunning is returned by calls that need the speaker's server.
var ErrNotRunning = errors.New("bgp speaker not running")

// validate checks cfg; New and SetIdentity use it.
func (cfg Config) validate() error {
	if !cfg.RouterID.Is4() {
		return fmt.Errorf("router id %v: want an IPv4 address", cfg.RouterID)
	}
	if cfg.ASN == 0 {
		return errors.New("local ASN 0")
	}
	for _, p := range cfg.Peers {
		if !p.Address.IsValid() || p.ASN == 0 {
			return fmt.Errorf("peer %v: address and ASN are required", p.Address)
		}
		if p.KeepaliveInterval <= 0 || p.HoldTime <= p.KeepaliveInterval {
			return fmt.Errorf("peer %v: keepalive %s must be below hold time %s", p.Address, p.KeepaliveInterval, p.HoldTime)
		}
		if b := p.BFD; b.Enabled && (b.MinTx < time.Millisecond || b.MinRx < time.Millisecond || b.Multiplier == 0) {
			return fmt.Errorf("peer %v: bfd needs intervals of at least 1ms and a multiplier, got %+v", p.Address, b)
		}
	}
	return nil
}

// New validates cfg; it does no I/O.
func New(cfg Config, logger *slog.Logger) (*Speaker, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Speaker{log: logger, cfg: cfg}
	s.sessions.reset()
	return s, nil
}

// findPeer returns the peer at addr in peers.
func findPeer(peers []PeerConfig, addr netip.Addr) (PeerConfig, bool) {
	for _, p := range peers {
		if p.Address == addr {
			return p, true
		}
	}
	return PeerConfig{}, false
}
