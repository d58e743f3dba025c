package metrics

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/podrouter/podrouter/datapath"
	"github.com/podrouter/podrouter/health"
	"github.com/podrouter/podrouter/routes"
)

// fakeHealth is a HealthSource. It fails the test when called without a
// deadline: a scrape must never wait on the daemon unboundedly.
type fakeHealth struct {
	t  *testing.T
	mu sync.Mutex
	s  health.Snapshot
}

func (f *fakeHealth) Snapshot(ctx context.Context) health.Snapshot {
	if _, ok := ctx.Deadline(); !ok {
		f.t.Error("Snapshot called without a deadline")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s
}

func (f *fakeHealth) set(edit func(*health.Snapshot)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	edit(&f.s)
}

type fakeRoutes struct{ st routes.Stats }

func (f *fakeRoutes) Stats() routes.Stats { return f.st }

// fakeCounters is a CounterSource. It fails the test when read while the
// fast path is not loaded (the counters do not exist then).
type fakeCounters struct {
	t        *testing.T
	h        *fakeHealth
	counters []datapath.Counter
	err      error
}

func (f *fakeCounters) Counters() ([]datapath.Counter, error) {
	f.h.mu.Lock()
	state := f.h.s.Datapath.State
	f.h.mu.Unlock()
	if state != health.DatapathActive {
		f.t.Errorf("counters read while the datapath is %s", state)
	}
	return slices.Clone(f.counters), f.err
}

// part renders one part of the collector (bgp, routes or datapath) for
// its golden file.
type part struct {
	describe func(chan<- *prometheus.Desc)
	collect  func(chan<- prometheus.Metric)
}

func (p part) Describe(ch chan<- *prometheus.Desc) { p.describe(ch) }
func (p part) Collect(ch chan<- prometheus.Metric) { p.collect(ch) }

func snap(h *fakeHealth) health.Snapshot {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return h.Snapshot(ctx)
}

func bgpPart(h *fakeHealth) part {
	c := newBGPCollector(slog.New(slog.DiscardHandler))
	return part{c.describe, func(ch chan<- prometheus.Metric) { c.collect(ch, snap(h)) }}
}

func routesPart(h *fakeHealth, rt *fakeRoutes) part {
	c := newRoutesCollector()
	return part{c.describe, func(ch chan<- prometheus.Metric) { c.collect(ch, snap(h), rt.Stats()) }}
}

// datapathPart renders the fast path; counters nil: disabled.
func datapathPart(h *fakeHealth, counters CounterSource) part {
	c := newDatapathCollector(slog.New(slog.DiscardHandler))
	return part{c.describe, func(ch chan<- prometheus.Metric) { c.collect(ch, snap(h).Datapath, counters) }}
}

func servicesPart(h *fakeHealth) part {
	c := newServicesCollector()
	return part{c.describe, func(ch chan<- prometheus.Metric) { s := snap(h); c.collect(ch, s.Services, s.Datapath.State) }}
}
