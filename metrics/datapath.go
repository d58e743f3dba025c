package metrics

import (
	"errors"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/podrouter/podrouter/health"
)

// Hook names for podrouter_datapath_programs_attached.
const hookTCXIngress = "tcx_ingress"

// datapathCollector renders the fast path of a snapshot and its counters.
type datapathCollector struct {
	log *slog.Logger

	up, loaded, fallback, endpoints, programs *prometheus.Desc
	packets, bytes                            *prometheus.Desc
	entries, capacity, pressure               *prometheus.Desc
	gcRuns, gcRemoved, gcDuration             *prometheus.Desc
	repairs                                   *prometheus.Desc
}

func newDatapathCollector(log *slog.Logger) *datapathCollector {
	return &datapathCollector{
		log: log,
		up:  sourceUpDesc("datapath"),
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
		repairs: desc("datapath", "drift_repairs_total",
			"Fast-path state changed behind podrouter's back and put back: map_entry (endpoint, node-address "+
				"and pass-prefix map entries changed or deleted), hook (tcx programs found detached).", "kind"),
		gcRuns: desc("datapath", "ct_gc_runs_total",
			"Conntrack garbage-collection passes run by the daemon."),
		gcRemoved: desc("datapath", "ct_gc_removed_total",
			"Expired conntrack entries removed by the garbage collector."),
		gcDuration: desc("datapath", "ct_gc_last_duration_seconds",
			"Duration of the last conntrack garbage-collection pass."),
	}
}

func (c *datapathCollector) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.loaded, c.fallback, c.endpoints, c.programs,
		c.packets, c.bytes, c.entries, c.capacity, c.pressure, c.gcRuns, c.gcRemoved, c.gcDuration, c.repairs, c.up} {
		ch <- d
	}
}

// collect renders st; counters is nil when the fast path is disabled.
func (c *datapathCollector) collect(ch chan<- prometheus.Metric, st health.Datapath, counters CounterSource) {
	gauge, counter := sender(ch, prometheus.GaugeValue), sender(ch, prometheus.CounterValue)
	loaded := st.State == health.DatapathActive
	if loaded {
		gauge(c.loaded, 1)
		gauge(c.fallback, 0, "none")
	} else {
		gauge(c.loaded, 0)
		gauge(c.fallback, 1, st.State.String())
	}
	gauge(c.endpoints, float64(len(st.FromEndpoint)))
	gauge(c.programs, float64(len(st.FromEndpoint)), "from-endpoint", hookTCXIngress)
	gauge(c.programs, float64(len(st.FromNetwork)), "from-network", hookTCXIngress)
	if !loaded || counters == nil {
		return
	}
	counter(c.repairs, float64(st.RepairedEntries), "map_entry")
	counter(c.repairs, float64(st.RepairedHooks), "hook")
	counter(c.gcRuns, float64(st.GCRuns))
	counter(c.gcRemoved, float64(st.GCRemoved))
	gauge(c.gcDuration, st.GCLastDuration.Seconds())

	cs, cerr := counters.Counters()
	for _, k := range cs {
		counter(c.packets, float64(k.Packets), k.Direction, k.Reason)
		counter(c.bytes, float64(k.Bytes), k.Direction, k.Reason)
	}
	for _, u := range st.Maps {
		if !strings.HasPrefix(u.Map, "ct_") {
			continue // the maps that can fill up
		}
		gauge(c.entries, float64(u.Entries), u.Map)
		gauge(c.capacity, float64(u.Capacity), u.Map)
		if u.Capacity > 0 {
			gauge(c.pressure, float64(u.Entries)/float64(u.Capacity), u.Map)
		}
	}
	var uerr error
	if st.MapsError != "" {
		uerr = errors.New(st.MapsError)
	}
	err := errors.Join(cerr, uerr)
	if err != nil {
		c.log.Debug("scrape datapath", "err", err)
	}
	sourceUp(ch, c.up, err)
}
