package metrics

import (
	"errors"
	"log/slog"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/podrouter/podrouter/health"
)

const namespace = "podrouter"

func desc(subsystem, name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, name), help, labels, nil)
}

var peerLabels = []string{"peer", "peer_asn", "afi"}

// sourceUpDesc is podrouter_metrics_source_up for one source. Every
// collector emits it for the source it reads, so that a failing source
// shows instead of silently missing series. The source is a constant label
// so that each collector owns a distinct descriptor.
func sourceUpDesc(source string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "metrics", "source_up"),
		"Whether the last scrape could read the source (1) or not (0).", nil, prometheus.Labels{"source": source})
}

func sourceUp(ch chan<- prometheus.Metric, d *prometheus.Desc, err error) {
	v := 1.0
	if err != nil {
		v = 0
	}
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
}

// bgpCollector renders the BGP sessions of a snapshot.
type bgpCollector struct {
	log *slog.Logger

	up, state, uptime, flaps, trips          *prometheus.Desc
	received, accepted, rejected, advertised *prometheus.Desc
	updatesIn, updatesOut, grState, bfdUp    *prometheus.Desc
}

func newBGPCollector(log *slog.Logger) *bgpCollector {
	return &bgpCollector{
		log: log,
		up:  sourceUpDesc("bgp"),
		state: desc("bgp", "session_state",
			"BGP session FSM state: 1 for the session's current state, 0 for the others.",
			append(peerLabels, "state")...),
		uptime: desc("bgp", "session_uptime_seconds",
			"Seconds since the session reached Established; 0 when it is not established.", peerLabels...),
		flaps: desc("bgp", "session_flaps_total",
			"Times the session left the Established state.", peerLabels...),
		trips: desc("bgp", "max_prefix_trips_total",
			"Times the peer was shut down for exceeding its max-prefix limit.", peerLabels...),
		received: desc("bgp", "prefixes_received",
			"Prefixes the peer sent, before the import policy (Adj-RIB-In).", peerLabels...),
		accepted: desc("bgp", "prefixes_accepted",
			"Prefixes from the peer accepted by the import policy (only default routes are).", peerLabels...),
		rejected: desc("bgp", "prefixes_rejected",
			"Prefixes from the peer rejected by the import policy (received minus accepted).", peerLabels...),
		advertised: desc("bgp", "prefixes_advertised",
			"Prefixes advertised to the peer.", peerLabels...),
		updatesIn: desc("bgp", "updates_received_total",
			"BGP UPDATE messages received from the peer (this session's counters).", peerLabels...),
		updatesOut: desc("bgp", "updates_sent_total",
			"BGP UPDATE messages sent to the peer (this session's counters).", peerLabels...),
		grState: desc("bgp", "graceful_restart_state",
			"Graceful restart state of the peer: 1 for the current state, 0 for the others.", append(peerLabels, "state")...),
		bfdUp: desc("bgp", "bfd_up",
			"Whether the session's BFD is up (1) or not (0); only for peers with BFD enabled.", peerLabels...),
	}
}

func (c *bgpCollector) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.state, c.uptime, c.flaps, c.trips,
		c.received, c.accepted, c.rejected, c.advertised, c.updatesIn, c.updatesOut, c.grState, c.bfdUp, c.up} {
		ch <- d
	}
}

func (c *bgpCollector) collect(ch chan<- prometheus.Metric, s health.Snapshot) {
	if s.PeersErr != "" {
		sourceUp(ch, c.up, errors.New(s.PeersErr))
		c.log.Debug("scrape bgp peers", "err", s.PeersErr)
		return
	}
	sourceUp(ch, c.up, nil)
	gauge, counter := sender(ch, prometheus.GaugeValue), sender(ch, prometheus.CounterValue)
	for _, p := range s.Peers {
		l := []string{p.Address.String(), strconv.FormatUint(uint64(p.ASN), 10), p.AFI()}
		for _, st := range health.SessionStates {
			gauge(c.state, b2f(st == p.State), append(l, st.String())...)
		}
		gauge(c.uptime, p.Uptime.Seconds(), l...)
		counter(c.flaps, float64(p.Flaps), l...)
		counter(c.trips, float64(p.MaxPrefixTrips), l...)
		gauge(c.received, float64(p.Received), l...)
		gauge(c.accepted, float64(p.Accepted), l...)
		gauge(c.rejected, float64(p.Received-min(p.Accepted, p.Received)), l...)
		gauge(c.advertised, float64(p.Advertised), l...)
		counter(c.updatesIn, float64(p.UpdatesIn), l...)
		counter(c.updatesOut, float64(p.UpdatesOut), l...)
		for _, st := range health.GRStates {
			gauge(c.grState, b2f(st == p.GracefulRestart), append(l, st.String())...)
		}
		if p.BFD != health.BFDOff {
			gauge(c.bfdUp, b2f(p.BFD == health.BFDUp), l...)
		}
	}
}
