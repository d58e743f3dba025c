package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ErrNonLoopback is returned by New for a listen address that is not a
// loopback address when Config.AllowNonLoopback is not set.
var ErrNonLoopback = errors.New("metrics listener must be on a loopback address")

// Config configures the metrics and health listener.
type Config struct {
	// Address is the listen address, "ip:port".
	Address string
	// AllowNonLoopback permits a non-loopback (or unspecified) address.
	// Off by default: /metrics tells anyone who can reach it about the
	// node's peers and traffic.
	AllowNonLoopback bool
	// Version is reported in podrouter_build_info.
	Version string
	// Timeout bounds reading the sources in one scrape or readiness check
	// (default 5s).
	Timeout time.Duration
}

// Server serves /metrics, /healthz and /readyz.
type Server struct {
	cfg     Config
	addr    netip.AddrPort
	log     *slog.Logger
	reg     *prometheus.Registry
	handler http.Handler
	ready   readiness
}

// New validates cfg and the sources and builds the registry and handler;
// it does no I/O.
func New(cfg Config, logger *slog.Logger, src Sources) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	addr, err := CheckAddress(cfg.Address, cfg.AllowNonLoopback)
	if err != nil {
		return nil, err
	}
	if src.Health == nil || src.Routes == nil {
		return nil, errors.New("metrics needs the health and route sources")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	reg, err := NewRegistry(cfg, logger, src)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, addr: addr, log: logger, reg: reg, ready: readiness{src: src.Health, timeout: cfg.Timeout}}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             2 * cfg.Timeout,
	}))
	mux.HandleFunc("GET /healthz", serveHealthy)
	mux.HandleFunc("GET /readyz", s.ready.serveReady)
	s.handler = mux
	return s, nil
}

// CheckAddress parses an "ip:port" listen address and refuses a
// non-loopback one unless allowNonLoopback.
func CheckAddress(address string, allowNonLoopback bool) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("metrics address %q: want ip:port: %w", address, err)
	}
	if !ap.Addr().Unmap().IsLoopback() && !allowNonLoopback {
		return netip.AddrPort{}, fmt.Errorf("metrics address %s: %w (set it to 127.0.0.1 or allow non-loopback explicitly)", ap, ErrNonLoopback)
	}
	return ap, nil
}

// NewRegistry returns a registry with podrouter's collectors, build info,
// and the Go runtime and process collectors.
func NewRegistry(cfg Config, logger *slog.Logger, src Sources) (*prometheus.Registry, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	reg := prometheus.NewPedanticRegistry()
	version := cfg.Version
	if version == "" {
		version = "unknown"
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "A constant 1, labelled with podrouter's version and the Go version it was built with.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)
	for _, c := range []prometheus.Collector{
		buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newCollector(src, logger, cfg.Timeout),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics collector: %w", err)
		}
	}
	return reg, nil
}

// Handler serves /metrics, /healthz and /readyz.
func (s *Server) Handler() http.Handler { return s.handler }

// Addr is the configured listen address.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Run listens on the configured address and serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	return Serve(ctx, s.addr.String(), s.handler, s.log)
}

// Serve listens on addr and serves h until ctx ends, then shuts down,
// giving in-flight requests a second to finish.
func Serve(ctx context.Context, addr string, h http.Handler, logger *slog.Logger) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	return ServeListener(ctx, ln, h, logger)
}

// ServeListener serves h on ln until ctx ends; it closes ln.
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("metrics listening", "address", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("metrics server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-errc // http.ErrServerClosed
	return nil
}
