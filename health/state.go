package health

import "fmt"

// The states below are podrouter's vocabulary for what it reports: one
// enum per state, rendered by its String (and MarshalText, the local
// API's and the metrics' label value). Packages compare the enums, never
// their text.

// SessionState is a BGP session's FSM state (RFC 4271 section 8).
type SessionState uint8

// Session states, in FSM order.
const (
	SessionUnknown SessionState = iota
	SessionIdle
	SessionConnect
	SessionActive
	SessionOpenSent
	SessionOpenConfirm
	SessionEstablished
)

// SessionStates are the states a session can be in, in FSM order (the
// values of podrouter_bgp_session_state's state label).
var SessionStates = []SessionState{SessionIdle, SessionConnect, SessionActive, SessionOpenSent, SessionOpenConfirm, SessionEstablished}

var sessionNames = [...]string{"unknown", "idle", "connect", "active", "opensent", "openconfirm", "established"}

func (s SessionState) String() string { return name(sessionNames[:], int(s)) }

// MarshalText writes the state's name.
func (s SessionState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name.
func (s *SessionState) UnmarshalText(b []byte) error { return parse(sessionNames[:], b, (*uint8)(s)) }

// AdminState is whether a peer is enabled.
type AdminState uint8

// Admin states.
const (
	AdminUp    AdminState = iota
	AdminDown             // disabled by configuration or the operator
	AdminPfxCt            // shut down for exceeding max-prefix, until re-enabled
)

var adminNames = [...]string{"up", "down", "pfx_ct"}

func (s AdminState) String() string { return name(adminNames[:], int(s)) }

// MarshalText writes the state's name.
func (s AdminState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name.
func (s *AdminState) UnmarshalText(b []byte) error { return parse(adminNames[:], b, (*uint8)(s)) }

// BFDState is a session's BFD state; BFDOff when the peer runs no BFD.
type BFDState uint8

// BFD states (RFC 5880 section 4.1), plus off.
const (
	BFDOff BFDState = iota
	BFDAdminDown
	BFDDown
	BFDInit
	BFDUp
)

var bfdNames = [...]string{"", "admin-down", "down", "init", "up"}

func (s BFDState) String() string { return name(bfdNames[:], int(s)) }

// MarshalText writes the state's name ("" when off).
func (s BFDState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name.
func (s *BFDState) UnmarshalText(b []byte) error { return parse(bfdNames[:], b, (*uint8)(s)) }

// GRState is a peer's graceful-restart state (RFC 4724).
type GRState uint8

// Graceful-restart states.
const (
	GRDisabled        GRState = iota
	GREnabled                 // negotiated, nobody restarting
	GRPeerRestarting          // the peer restarts: its routes are kept as stale
	GRLocalRestarting         // we restarted and wait for End-of-RIB
)

// GRStates are the values of podrouter_bgp_graceful_restart_state's state label.
var GRStates = []GRState{GRDisabled, GREnabled, GRPeerRestarting, GRLocalRestarting}

var grNames = [...]string{"disabled", "enabled", "peer-restarting", "local-restarting"}

func (s GRState) String() string { return name(grNames[:], int(s)) }

// MarshalText writes the state's name.
func (s GRState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name.
func (s *GRState) UnmarshalText(b []byte) error { return parse(grNames[:], b, (*uint8)(s)) }

// DatapathState is what the eBPF fast path is doing.
type DatapathState uint8

// Datapath states.
const (
	DatapathDisabled    DatapathState = iota // datapath.enabled is false
	DatapathStarting                         // not loaded yet, no failure either
	DatapathActive                           // programs loaded, hooks attached
	DatapathUnavailable                      // load/attach failed: the kernel path forwards
)

var datapathNames = [...]string{"disabled", "starting", "active", "unavailable"}

func (s DatapathState) String() string { return name(datapathNames[:], int(s)) }

// MarshalText writes the state's name.
func (s DatapathState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name.
func (s *DatapathState) UnmarshalText(b []byte) error { return parse(datapathNames[:], b, (*uint8)(s)) }

// DrainState is where the pod CIDRs' advertisement is in a drain.
type DrainState uint8

// Drain states: advertised → (depreferred →) withdrawn, and back to
// advertised on undrain.
const (
	DrainNone        DrainState = iota // advertised normally
	DrainDepreferred                   // advertised depreferred; withdrawn later
	DrainWithdrawn                     // withdrawn; sessions stay up
)

var drainNames = [...]string{"", "depreferred", "withdrawn"}

func (s DrainState) String() string { return name(drainNames[:], int(s)) }

// MarshalText writes the state's name ("" when not draining).
func (s DrainState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name.
func (s *DrainState) UnmarshalText(b []byte) error { return parse(drainNames[:], b, (*uint8)(s)) }

func name(names []string, i int) string {
	if i < 0 || i >= len(names) {
		return fmt.Sprintf("state(%d)", i)
	}
	return names[i]
}

func parse(names []string, b []byte, dst *uint8) error {
	for i, n := range names {
		if n == string(b) {
			*dst = uint8(i)
			return nil
		}
	}
	return fmt.Errorf("unknown state %q", b)
}

// ProxyState is what podrouter found of kube-proxy on this node.
type ProxyState uint8

// kube-proxy states.
const (
	ProxyNotProbed   ProxyState = iota // not asked (no fast path, not Kubernetes mode, probe off)
	ProxyAbsent                        // nothing answered at the probe address
	ProxySupported                     // iptables or nftables: translations the fast path keeps in netfilter
	ProxyUnsupported                   // another mode (ipvs): see Services.KernelConntrack
)

var proxyNames = [...]string{"not-probed", "absent", "supported", "unsupported"}

func (s ProxyState) String() string { return name(proxyNames[:], int(s)) }

// MarshalText writes the state's name.
func (s ProxyState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name.
func (s *ProxyState) UnmarshalText(b []byte) error { return parse(proxyNames[:], b, (*uint8)(s)) }
