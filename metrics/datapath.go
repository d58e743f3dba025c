package metrics

import (
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// Hook names for podrouter_datapath_programs_attached.
const hookTCXIngress = "tcx_ingress"

// datapathCollector reads the fast path at scrape time. A nil source
// means the fast path is disabled by configuration.
type datapathCollector struct {
	src DatapathSource
	log *slog.Logger

	up, loaded, fallback, endpoints, programs *prometheus.Desc
	packets, bytes                            *prometheus.Desc
	entries, capacity, pressure               *prometheus.Desc
	gcRuns, gcRemoved, gcDuration             *prometheus.Desc
}

func newDatapathCollector(src DatapathSource, log *slog.Logger) *datapathCollector {
	return &datapathCollector{
		src: src, log: log,
		up: sourceUpDesc("datapath"),
		loaded: desc("datapath", "loaded",
			"Whether the eBPF programs are loaded (1) or not (0)."),
		fallback: desc("datapath", "fallback",
			"1 while the kernel path forwards instead of the eBPF fast path, with the reason "+
				"(disabled, starting, unavailable, error); 0 with reason none while the fast path is loaded.", "reason"),
		endpoints: desc("datapath", "endpoints_attached",
			"Pod endpoints (host-side veths) with the from-endpoint program attached."),
		programs: desc("datapath", "programs_attached",
			"Interfaces with the program attached, per program and hook.", "program", "hook"),
		packets: desc("datapath", "packets_total",
			"Packets seen by the eBPF programs, by direction and verdict reason.", "direction", "reason"),
		bytes: desc("datapath", "bytes_total",
			"Bytes seen by the eBPF programs, by direction and verdict reason.", "direction", "reason"),
		entries: desc("datapath", "map_entries",
			"Entries in a BPF map that can fill up (conntrack).", "map"),
		capacity: desc("datapath", "map_capacity_entries",
			"Maximum entries of a BPF map.", "map"),
		pressure: desc("datapath", "map_pressure_ratio",
			"Fill level of a BPF map: entries / capacity.", "map"),
		gcRuns: desc("datapath", "ct_gc_runs_total",
			"Conntrack garbage-collection passes run by the daemon."),
		gcRemoved: desc("datapath", "ct_gc_removed_total",
			"Expired conntrack entries removed by the garbage collector."),
		gcDuration: desc("datapath", "ct_gc_last_duration_seconds",
			"Duration of the last conntrack garbage-collection pass."),
	}
}

func (c *datapathCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.loaded, c.fallback, c.endpoints, c.programs,
		c.packets, c.bytes, c.entries, c.capacity, c.pressure, c.gcRuns, c.gcRemoved, c.gcDuration, c.up} {
		ch <- d
	}
}

func (c *datapathCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	st := DatapathState{Mode: DatapathDisabled, Reason: "disabled"}
	if c.src != nil {
		st = c.src.DatapathState()
	}
	if st.Mode == DatapathLoaded {
		gauge(c.loaded, 1)
		gauge(c.fallback, 0, "none")
	} else {
		reason := st.Reason
		if reason == "" {
			reason = string(st.Mode)
		}
		gauge(c.loaded, 0)
		gauge(c.fallback, 1, reason)
	}
	gauge(c.endpoints, float64(len(st.Endpoints)))
	gauge(c.programs, float64(len(st.Endpoints)), "from-endpoint", hookTCXIngress)
	gauge(c.programs, float64(len(st.Uplinks)), "from-network", hookTCXIngress)
	if st.Mode != DatapathLoaded {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.gcRuns, prometheus.CounterValue, float64(st.GCRuns))
	ch <- prometheus.MustNewConstMetric(c.gcRemoved, prometheus.CounterValue, float64(st.GCRemoved))
	gauge(c.gcDuration, st.GCLastDuration.Seconds())

	counters, cerr := c.src.DatapathCounters()
	for _, k := range counters {
		ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(k.Packets), k.Direction, k.Reason)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(k.Bytes), k.Direction, k.Reason)
	}
	usage, uerr := c.src.MapUsage()
	for _, u := range usage {
		gauge(c.entries, float64(u.Entries), u.Map)
		gauge(c.capacity, float64(u.Capacity), u.Map)
		if u.Capacity > 0 {
			gauge(c.pressure, float64(u.Entries)/float64(u.Capacity), u.Map)
		}
	}
	err := errors.Join(cerr, uerr)
	if err != nil {
		c.log.Debug("scrape datapath", "err", err)
	}
	sourceUp(ch, c.up, err)
}
