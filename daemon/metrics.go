package daemon

import (
	"context"
	"log/slog"

	"github.com/podrouter/podrouter/config"
	"github.com/podrouter/podrouter/datapath"
	"github.com/podrouter/podrouter/metrics"
)

// startObservability builds the /metrics, /healthz and /readyz listener on
// cfg.Metrics.Address (none: disabled, run returns at once with nil). It
// does no I/O; run listens and serves until its context ends. Metrics and
// readiness render h's health snapshots; dp is nil when the eBPF fast path
// is disabled. A non-loopback address needs metrics.allowNonLoopback.
func startObservability(cfg *config.Config, version string, log *slog.Logger,
	h metrics.HealthSource, ri metrics.RouteSource, dp *datapath.Datapath,
) (run func(context.Context) error, err error) {
	if !cfg.Metrics.Address.IsValid() {
		return func(context.Context) error { return nil }, nil
	}
	src := metrics.Sources{Health: h, Routes: ri}
	if dp != nil {
		src.Datapath = dp
	}
	srv, err := metrics.New(metrics.Config{
		Address:          cfg.Metrics.Address.String(),
		AllowNonLoopback: cfg.Metrics.AllowNonLoopback,
		Version:          version,
	}, log, src)
	if err != nil {
		return nil, err
	}
	return srv.Run, nil
}
