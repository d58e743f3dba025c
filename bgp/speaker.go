package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Speaker is the embedded GoBGP speaker. Its state is grouped by concern,
// each group in its own file: the server's lifecycle (here), the
// advertisements (advertise.go), the drain state machine (drain.go), the
// sessions' bookkeeping (status.go) and BFD (bfd.go). One mutex guards all
// but BFD; it is never held across a call into GoBGP.
type Speaker struct {
	log *slog.Logger

	mu       sync.Mutex
	cfg      Config // identity and peers in force
	life     lifecycle
	adv      advertising
	drain    drainMachine
	sessions sessions

	bfd bfdSessions // own lock, taken before mu: serialises syncBFD
}

// lifecycle is the running BGP server.
type lifecycle struct {
	srv  *server.BgpServer  // nil when not running
	stop context.CancelFunc // ends the per-server goroutines
	// ctx and kicker are the first Start's, for restarts (SetIdentity).
	ctx    context.Context
	kicker Kicker
}

// Start brings up the BGP server, its policies, the gRPC API and every peer.
// It returns once they are configured; sessions come up in the background.
// k is kicked whenever a session changes state or a peer sends an update.
func (s *Speaker) Start(ctx context.Context, k Kicker) error {
	s.mu.Lock()
	if s.life.ctx == nil {
		s.life.ctx, s.life.kicker = ctx, k
	}
	s.mu.Unlock()
	return s.start(ctx, k)
}

func (s *Speaker) start(parent context.Context, k Kicker) error {
	s.mu.Lock()
	cfg := s.cfg
	s.mu.Unlock()
	if err := preflightAPI(cfg.APIAddress); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(parent)
	lv := new(slog.LevelVar)
	lv.Set(cfg.LogLevel)
	gobgpLog := slog.New(levelHandler{s.log.Handler(), lv}).With("component", "gobgp")
	opts := []server.ServerOption{server.LoggerOption(gobgpLog, lv)}
	if cfg.APIAddress != "" {
		opts = append(opts, server.GrpcListenAddress(cfg.APIAddress))
	}
	srv := server.NewBgpServer(opts...)
	go srv.Serve()

	var listen []string
	for _, a := range cfg.ListenAddresses {
		listen = append(listen, a.String())
	}
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:             cfg.ASN,
		RouterId:        cfg.RouterID.String(),
		ListenPort:      cfg.ListenPort,
		ListenAddresses: listen,
	}}); err != nil {
		srv.Stop()
		cancel()
		return fmt.Errorf("start bgp: %w", err)
	}
	s.mu.Lock()
	s.life.srv, s.life.stop = srv, cancel
	s.mu.Unlock()
	fail := func(err error) error {
		s.Close()
		return err
	}
	if err := s.applyPolicies(ctx, s.desired()); err != nil {
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
	s.bfd.reset()
	for _, p := range cfg.Peers {
		if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: toAPIPeer(withoutBFD(p))}); err != nil {
			return fail(fmt.Errorf("add peer %s: %w", p.Address, err))
		}
		s.log.Info("peer configured", "peer", p.Address, "peer_asn", p.ASN, "graceful_restart", p.GracefulRestart)
	}
	if strings.HasPrefix(cfg.APIAddress, "unix://") {
		restrictSocket(strings.TrimPrefix(cfg.APIAddress, "unix://"))
	}
	go s.summariseRejects(ctx)
	// Apply what the agent asked for before we were running.
	if err := s.SetAdvertisements(ctx, s.desired()); err != nil {
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

func (s *Speaker) server() *server.BgpServer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.life.srv
}

// Close stops the server: every session gets a NOTIFICATION (Cease), so
// peers flush our routes at once. Use it for drain/shutdown only; a restart
// must instead exit without it so graceful restart keeps our routes.
func (s *Speaker) Close() {
	s.mu.Lock()
	srv, stop := s.life.srv, s.life.stop
	s.life.srv, s.life.stop = nil, nil
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	if srv != nil {
		srv.Stop()
	}
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
