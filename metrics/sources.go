package metrics

import (
	"context"

	"github.com/podrouter/podrouter/datapath"
	"github.com/podrouter/podrouter/health"
	"github.com/podrouter/podrouter/routes"
)

// Sources are what metrics and readiness are read from. Health and Routes
// are required; a nil Datapath means the fast path is disabled by
// configuration.
type Sources struct {
	Health   HealthSource
	Routes   RouteSource
	Datapath CounterSource
}

// HealthSource is the daemon's state: BGP sessions, default routes, the
// fast path and the reconcile loop. Each scrape and each /readyz takes one
// snapshot; ctx carries the scrape's deadline.
type HealthSource interface {
	Snapshot(ctx context.Context) health.Snapshot
}

// RouteSource reports the route installer's cumulative counters
// (*routes.Installer).
type RouteSource interface {
	Stats() routes.Stats
}

// CounterSource reports the fast path's cumulative per (direction,
// reason) packet and byte counters (*datapath.Datapath).
type CounterSource interface {
	Counters() ([]datapath.Counter, error)
}
