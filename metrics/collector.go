package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/podrouter/podrouter/health"
)

// collector reads the daemon's state at scrape time: one health snapshot
// per scrape, rendered by the BGP, routes and datapath parts, plus the
// installer's and the fast path's counters. Nothing is cached between
// scrapes, so the series of a removed peer vanish with it.
type collector struct {
	src     Sources
	log     *slog.Logger
	timeout time.Duration
	bgp     *bgpCollector
	routes  *routesCollector
	dp      *datapathCollector
	svc     *servicesCollector
}

func newCollector(src Sources, log *slog.Logger, timeout time.Duration) *collector {
	return &collector{src: src, log: log, timeout: timeout,
		bgp: newBGPCollector(log), routes: newRoutesCollector(), dp: newDatapathCollector(log), svc: newServicesCollector()}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	c.bgp.describe(ch)
	c.routes.describe(ch)
	c.dp.describe(ch)
	c.svc.describe(ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	s := c.src.Health.Snapshot(ctx)
	c.collect(ch, s)
}

func (c *collector) collect(ch chan<- prometheus.Metric, s health.Snapshot) {
	c.bgp.collect(ch, s)
	c.routes.collect(ch, s, c.src.Routes.Stats())
	c.dp.collect(ch, s.Datapath, c.src.Datapath)
	c.svc.collect(ch, s.Services, s.Datapath.State)
}

// metricFunc sends one constant sample of d.
type metricFunc func(d *prometheus.Desc, v float64, labels ...string)

// sender is the metricFunc of one value type writing to ch; the
// collectors' collect methods take a gauge and a counter from it.
func sender(ch chan<- prometheus.Metric, t prometheus.ValueType) metricFunc {
	return func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, t, v, labels...)
	}
}
