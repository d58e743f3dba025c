package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/podrouter/podrouter/health"
	"github.com/podrouter/podrouter/routes"
)

// routesCollector renders the reconcile loop and the default routes of a
// snapshot and the route installer's counters.
type routesCollector struct {
	reconciles, reconcileErrors, lastDuration, lastAt, lastOK *prometheus.Desc

	learned, installed, hold, foreignPresent, foreignBlocking *prometheus.Desc

	installs, removals, drift, foreignSeen                 *prometheus.Desc
	writes, writeErrors, dumpsInterrupted, resubscriptions *prometheus.Desc
}

func newRoutesCollector() *routesCollector {
	return &routesCollector{
		reconciles: desc("agent", "reconciles_total",
			"Reconcile passes completed."),
		reconcileErrors: desc("agent", "reconcile_errors_total",
			"Reconcile passes that ended with an error."),
		lastDuration: desc("agent", "last_reconcile_duration_seconds",
			"Duration of the last reconcile pass."),
		lastAt: desc("agent", "last_reconcile_timestamp_seconds",
			"Unix time the last reconcile pass started; 0 before the first."),
		lastOK: desc("agent", "last_reconcile_success",
			"Whether the last reconcile pass ended without error (1) or not (0)."),

		learned: desc("bgp", "default_next_hops_learned",
			"Next hops of the default routes peers offer, per address family.", "family"),
		installed: desc("routes", "default_next_hops_installed",
			"Next hops of podrouter's default route in the kernel, per address family.", "family"),
		hold: desc("routes", "startup_hold_active",
			"Whether the startup hold keeps the previous instance's default route (1) or not (0).", "family"),
		foreignPresent: desc("routes", "foreign_default_present",
			"Whether the routing table holds a default route podrouter did not install.", "family"),
		foreignBlocking: desc("routes", "foreign_default_blocking",
			"Whether a foreign default route sits at podrouter's metric, so podrouter's is not installed.", "family"),

		installs: desc("routes", "installs_total",
			"Default routes added or replaced in the kernel."),
		removals: desc("routes", "removals_total",
			"podrouter's default routes deleted from the kernel."),
		drift: desc("routes", "drift_repairs_total",
			"Times podrouter's default route was found missing or changed and rewritten.", "kind"),
		foreignSeen: desc("routes", "foreign_default_seen_total",
			"Times a foreign default route appeared in the routing table."),
		writes: desc("routes", "netlink_writes_total",
			"Route writes attempted over netlink."),
		writeErrors: desc("routes", "netlink_write_errors_total",
			"Route writes over netlink that failed."),
		dumpsInterrupted: desc("routes", "netlink_dumps_interrupted_total",
			"Netlink dumps retried after an interruption (NLM_F_DUMP_INTR)."),
		resubscriptions: desc("routes", "netlink_resubscriptions_total",
			"Netlink subscriptions re-established."),
	}
}

func (c *routesCollector) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.reconciles, c.reconcileErrors, c.lastDuration, c.lastAt, c.lastOK,
		c.learned, c.installed, c.hold, c.foreignPresent, c.foreignBlocking,
		c.installs, c.removals, c.drift, c.foreignSeen,
		c.writes, c.writeErrors, c.dumpsInterrupted, c.resubscriptions} {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c *routesCollector) collect(ch chan<- prometheus.Metric, snap health.Snapshot, s routes.Stats) {
	gauge, counter := sender(ch, prometheus.GaugeValue), sender(ch, prometheus.CounterValue)

	r := snap.Reconcile
	counter(c.reconciles, float64(r.Count))
	counter(c.reconcileErrors, float64(r.Errors))
	if r.Count > 0 {
		gauge(c.lastDuration, r.Duration.Seconds())
		gauge(c.lastAt, float64(r.At.UnixMilli())/1e3)
		gauge(c.lastOK, b2f(r.Error == ""))
		for _, f := range snap.Defaults() {
			gauge(c.learned, float64(len(f.Learned)), f.Family)
			gauge(c.installed, float64(len(f.Installed)), f.Family)
			gauge(c.hold, b2f(f.Holding), f.Family)
			gauge(c.foreignPresent, b2f(f.Foreign), f.Family)
			gauge(c.foreignBlocking, b2f(f.Blocked), f.Family)
		}
	}

	counter(c.installs, float64(s.Installs))
	counter(c.removals, float64(s.Removals))
	counter(c.drift, float64(s.DriftMissing), "missing")
	counter(c.drift, float64(s.DriftChanged), "changed")
	counter(c.foreignSeen, float64(s.ForeignSeen))
	counter(c.writes, float64(s.Writes))
	counter(c.writeErrors, float64(s.WriteErrors))
	counter(c.dumpsInterrupted, float64(s.DumpsInterrupted))
	counter(c.resubscriptions, float64(s.Resubscriptions))
}
