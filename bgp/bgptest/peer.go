package bgptest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// Config is what the hostile peer says about itself in its OPEN.
type Config struct {
	ASN      uint32     // the peer's AS (4-octet capable)
	RouterID netip.Addr // IPv4
	HoldTime time.Duration
	// Families are announced in Multiprotocol capabilities (default:
	// IPv4 unicast).
	Families []bgp.Family
	// GracefulRestart announces the capability (restart time 120 s,
	// forwarding state kept) for every family.
	GracefulRestart bool
	// Open, when set, is sent instead of the OPEN built from the fields
	// above (OPEN reproducers); Handshake then stops after sending it and
	// waits for the speaker's answer.
	Open []byte
}

func (c Config) withDefaults() Config {
	if c.HoldTime == 0 {
		c.HoldTime = 9 * time.Second
	}
	if len(c.Families) == 0 {
		c.Families = []bgp.Family{bgp.RF_IPv4_UC}
	}
	return c
}

// Notification is a NOTIFICATION the speaker sent.
type Notification struct {
	Code, Subcode uint8
	Data          []byte
}

func (n Notification) String() string {
	return fmt.Sprintf("NOTIFICATION %d/%d (%s)", n.Code, n.Subcode, bgp.NewNotificationErrorCode(n.Code, n.Subcode))
}

// ErrClosed is returned when the speaker closed the connection without a
// NOTIFICATION.
var ErrClosed = errors.New("connection closed by the speaker")

// Peer is one session of the hostile peer.
type Peer struct {
	cfg  Config
	conn net.Conn

	wmu sync.Mutex // serialises writes (keepalives and test messages)

	mu      sync.Mutex
	notif   *Notification
	updates int // UPDATE messages received from the speaker
	eor     map[bgp.Family]bool
	err     error // why the reader stopped
	done    chan struct{}
	stopKA  chan struct{}
	stopped sync.Once
}

// Handshake runs the BGP handshake on conn (OPEN, KEEPALIVE both ways)
// and returns once the session is Established from the peer's side; it
// then keeps the session alive with KEEPALIVEs and records what the
// speaker sends. With cfg.Open set it sends those bytes instead of its
// OPEN and returns the peer as soon as they are written (the test then
// waits for the speaker's NOTIFICATION or close).
func Handshake(ctx context.Context, conn net.Conn, cfg Config) (*Peer, error) {
	cfg = cfg.withDefaults()
	p := &Peer{cfg: cfg, conn: conn, done: make(chan struct{}), stopKA: make(chan struct{}), eor: map[bgp.Family]bool{}}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl) // cleared below
	}
	open := cfg.Open
	if open == nil {
		var err error
		if open, err = OpenMessage(cfg); err != nil {
			return nil, err
		}
	}
	if _, err := conn.Write(open); err != nil {
		return nil, fmt.Errorf("send open: %w", err)
	}
	if cfg.Open != nil {
		_ = conn.SetDeadline(time.Time{})
		go p.read()
		return p, nil
	}
	// The speaker's OPEN, then its KEEPALIVE (after ours).
	m, raw, err := readMessage(conn)
	if err != nil {
		return nil, fmt.Errorf("read open: %w", err)
	}
	if m.Header.Type == bgp.BGP_MSG_NOTIFICATION {
		return nil, fmt.Errorf("speaker refused the open: %v", toNotification(m))
	}
	if m.Header.Type != bgp.BGP_MSG_OPEN {
		return nil, fmt.Errorf("want OPEN, got type %d (% x)", m.Header.Type, raw[:min(len(raw), 32)])
	}
	if err := p.write(keepalive()); err != nil {
		return nil, err
	}
	for {
		m, _, err := readMessage(conn)
		if err != nil {
			return nil, fmt.Errorf("read keepalive: %w", err)
		}
		if m.Header.Type == bgp.BGP_MSG_KEEPALIVE {
			break
		}
		if m.Header.Type == bgp.BGP_MSG_NOTIFICATION {
			return nil, fmt.Errorf("speaker closed the handshake: %v", toNotification(m))
		}
	}
	_ = conn.SetDeadline(time.Time{})
	go p.read()
	go p.keepalives()
	return p, nil
}

// OpenMessage is the peer's OPEN for cfg, encoded by GoBGP's library.
func OpenMessage(cfg Config) ([]byte, error) {
	cfg = cfg.withDefaults()
	caps := []bgp.ParameterCapabilityInterface{bgp.NewCapRouteRefresh(), bgp.NewCapFourOctetASNumber(cfg.ASN)}
	var gr []*bgp.CapGracefulRestartTuple
	for _, f := range cfg.Families {
		caps = append(caps, bgp.NewCapMultiProtocol(f))
		gr = append(gr, bgp.NewCapGracefulRestartTuple(f, true))
	}
	if cfg.GracefulRestart {
		caps = append(caps, bgp.NewCapGracefulRestart(false, false, 120, gr))
	}
	as2 := uint16(cfg.ASN)
	if cfg.ASN > 0xffff {
		as2 = bgp.AS_TRANS
	}
	m, err := bgp.NewBGPOpenMessage(as2, uint16(cfg.HoldTime/time.Second), cfg.RouterID,
		[]bgp.OptionParameterInterface{bgp.NewOptionParameterCapability(caps)})
	if err != nil {
		return nil, err
	}
	return m.Serialize()
}

func keepalive() []byte {
	b, _ := bgp.NewBGPKeepAliveMessage().Serialize() // a fixed 19-byte message cannot fail
	return b
}

// readMessage reads one BGP message (header then body) and parses it with
// GoBGP's library; raw is the whole message as received.
func readMessage(r io.Reader) (*bgp.BGPMessage, []byte, error) {
	hdr := make([]byte, bgp.BGP_HEADER_LENGTH)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[16:18]))
	if n < bgp.BGP_HEADER_LENGTH || n > 65535 {
		return nil, hdr, fmt.Errorf("bad length %d from the speaker", n)
	}
	raw := make([]byte, n)
	copy(raw, hdr)
	if _, err := io.ReadFull(r, raw[bgp.BGP_HEADER_LENGTH:]); err != nil {
		return nil, raw, err
	}
	m, err := bgp.ParseBGPMessage(raw)
	if err != nil {
		return nil, raw, fmt.Errorf("speaker sent a message GoBGP cannot parse: %w", err)
	}
	return m, raw, nil
}

func toNotification(m *bgp.BGPMessage) Notification {
	n := m.Body.(*bgp.BGPNotification)
	return Notification{Code: n.ErrorCode, Subcode: n.ErrorSubcode, Data: n.Data}
}

func (p *Peer) write(b []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_ = p.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := p.conn.Write(b)
	return err
}

func (p *Peer) read() {
	defer close(p.done)
	for {
		m, _, err := readMessage(p.conn)
		if err != nil {
			p.mu.Lock()
			p.err = err
			p.mu.Unlock()
			return
		}
		p.mu.Lock()
		switch m.Header.Type {
		case bgp.BGP_MSG_NOTIFICATION:
			n := toNotification(m)
			p.notif = &n
		case bgp.BGP_MSG_UPDATE:
			p.updates++
			u := m.Body.(*bgp.BGPUpdate)
			if ok, f := u.IsEndOfRib(); ok {
				p.eor[f] = true
			}
		}
		p.mu.Unlock()
	}
}

func (p *Peer) keepalives() {
	t := time.NewTicker(p.cfg.HoldTime / 3)
	defer t.Stop()
	for {
		select {
		case <-p.stopKA:
			return
		case <-p.done:
			return
		case <-t.C:
			if p.write(keepalive()) != nil {
				return
			}
		}
	}
}

// Send writes raw bytes (one or more messages, well-formed or not).
func (p *Peer) Send(raw []byte) error { return p.write(raw) }

// SendMsg serialises m with GoBGP's library and sends it.
func (p *Peer) SendMsg(m *bgp.BGPMessage) error {
	b, err := m.Serialize()
	if err != nil {
		return err
	}
	return p.write(b)
}

// Updates returns how many UPDATE messages the speaker sent.
func (p *Peer) Updates() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.updates
}

// Barrier sends a ROUTE-REFRESH and waits for the speaker's answer: once
// an UPDATE arrives after it, everything sent before it was processed
// (the speaker handles a session's messages in order). It fails if the
// session ends first.
func (p *Peer) Barrier(timeout time.Duration) error {
	before := p.Updates()
	if err := p.Send(RouteRefresh()); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for p.Updates() == before {
		if !p.Alive() {
			return ErrClosed
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no UPDATE within %s after a ROUTE-REFRESH", timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// Done is closed when the speaker closed the connection.
func (p *Peer) Done() <-chan struct{} { return p.done }

// Notification returns the NOTIFICATION the speaker sent, if any.
func (p *Peer) Notification() (Notification, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.notif == nil {
		return Notification{}, false
	}
	return *p.notif, true
}

// EndOfRIB reports whether the speaker sent End-of-RIB for f.
func (p *Peer) EndOfRIB(f bgp.Family) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.eor[f]
}

// WaitClosed waits up to timeout for the speaker to end the session and
// returns its NOTIFICATION (ErrClosed when it closed without one).
func (p *Peer) WaitClosed(timeout time.Duration) (Notification, error) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		return Notification{}, fmt.Errorf("session still open after %s", timeout)
	}
	if n, ok := p.Notification(); ok {
		return n, nil
	}
	return Notification{}, ErrClosed
}

// Alive reports whether the session is still open.
func (p *Peer) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Close stops the keepalives and closes the connection (no NOTIFICATION:
// like a crash of the peer).
func (p *Peer) Close() error {
	p.stopped.Do(func() { close(p.stopKA) })
	return p.conn.Close()
}
