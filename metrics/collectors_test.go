package metrics

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/podrouter/podrouter/datapath"
	"github.com/podrouter/podrouter/health"
	"github.com/podrouter/podrouter/routes"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func fixture(t *testing.T) (*fakeHealth, *fakeRoutes, *fakeCounters) {
	h := &fakeHealth{t: t, s: health.Snapshot{
		Peers: []health.Peer{
			{Address: netip.MustParseAddr("192.0.2.1"), ASN: 65001, State: health.SessionEstablished,
				Uptime: 90 * time.Second, Flaps: 2, Received: 10, Accepted: 1, Advertised: 1, MaxPrefixTrips: 1, UpdatesIn: 12, UpdatesOut: 3,
				GracefulRestart: health.GREnabled, BFD: health.BFDUp},
			{Address: netip.MustParseAddr("2001:db8::1"), ASN: 65001, State: health.SessionActive, BFD: health.BFDDown},
		},
		Reconcile: health.Reconcile{Count: 7, Errors: 1, At: time.Unix(1700000000, 500e6), Duration: 1500 * time.Microsecond},
		DefaultV4: health.Default{Learned: addrs("192.0.2.1", "192.0.2.2"), Installed: addrs("192.0.2.1", "192.0.2.2")},
		DefaultV6: health.Default{Installed: addrs("2001:db8::1"), Holding: true, Foreign: true},
		Datapath: health.Datapath{State: health.DatapathActive, Uplinks: []string{"eth0"}, FromNetwork: []string{"eth0"},
			FromEndpoint: []string{"veth1", "veth2"}, GCRuns: 4, GCRemoved: 17, GCLastDuration: 1500 * time.Microsecond,
			Maps: []health.MapUsage{{Map: "ct_tcp", Entries: 512, Capacity: 1024}, {Map: "ct_other", Entries: 0, Capacity: 256},
				{Map: "endpoints", Entries: 2, Capacity: 4096}}},
		Services: health.Services{Learned: true, Synced: true, ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16")},
			PassCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16"), netip.MustParsePrefix("192.0.2.0/24")},
			Proxy:     health.ProxySupported, ProxyMode: "iptables", KernelConntrack: "nat", KernelConntrackAuto: true},
	}}
	rt := &fakeRoutes{st: routes.Stats{Installs: 3, Removals: 1, DriftMissing: 2, DriftChanged: 1, ForeignSeen: 1,
		Writes: 5, WriteErrors: 1, DumpsInterrupted: 4, Resubscriptions: 0}}
	dp := &fakeCounters{t: t, h: h, counters: []datapath.Counter{
		{Direction: "from-endpoint", Reason: "fwd-redirect-neigh", Packets: 100, Bytes: 9000},
		{Direction: "from-network", Reason: "drop-malformed", Packets: 3, Bytes: 180},
	}}
	return h, rt, dp
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// golden compares the text exposition of c with testdata/name.
func golden(t *testing.T, c prometheus.Collector, name string) {
	t.Helper()
	got, err := gather(c)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := testutil.CollectAndCompare(c, bytes.NewReader(want)); err != nil {
		t.Errorf("%s: %v", name, err)
	}
}

func gather(c prometheus.Collector) ([]byte, error) {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		return nil, err
	}
	mfs, err := reg.Gather()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

func TestCollectorsGolden(t *testing.T) {
	h, rt, dp := fixture(t)
	golden(t, bgpPart(h), "bgp.prom")
	golden(t, routesPart(h, rt), "routes.prom")
	golden(t, datapathPart(h, dp), "datapath.prom")
	golden(t, servicesPart(h), "services.prom")
	h.set(func(s *health.Snapshot) {
		s.Services.Proxy, s.Services.ProxyMode, s.Services.KernelConntrack = health.ProxyUnsupported, "ipvs", "any"
	})
	golden(t, servicesPart(h), "services-ipvs.prom")
}

func TestDatapathStates(t *testing.T) {
	for _, tc := range []struct {
		name string
		dp   health.Datapath
	}{
		{"disabled", health.Datapath{}},
		{"starting", health.Datapath{State: health.DatapathStarting}},
		{"fallback", health.Datapath{State: health.DatapathUnavailable, Reason: "ebpf fast path unavailable: no bpffs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _, dp := fixture(t)
			h.set(func(s *health.Snapshot) { s.Datapath = tc.dp })
			var counters CounterSource = dp
			if tc.dp.State == health.DatapathDisabled {
				counters = nil
			}
			golden(t, datapathPart(h, counters), "datapath-"+tc.name+".prom")
		})
	}
}

// A peer removed from the configuration loses all of its series at the
// next scrape; a source that fails shows as source_up 0, without stale
// series.
func TestRemovedPeerSeriesVanish(t *testing.T) {
	h, _, _ := fixture(t)
	c := bgpPart(h)
	count := func() (v4, v6 int) {
		out, err := gather(c)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(string(out), "\n") {
			switch {
			case strings.Contains(line, `peer="192.0.2.1"`):
				v4++
			case strings.Contains(line, `peer="2001:db8::1"`):
				v6++
			}
		}
		return v4, v6
	}
	v4, v6 := count()
	if v4 == 0 || v6 != v4 {
		t.Fatalf("before: %d series for the v4 peer, %d for the v6 peer; want the same, non-zero", v4, v6)
	}
	h.set(func(s *health.Snapshot) { s.Peers = s.Peers[:1] })
	if v4b, v6b := count(); v4b != v4 || v6b != 0 {
		t.Errorf("after removing the v6 peer: %d v4 series (want %d), %d v6 series (want 0)", v4b, v4, v6b)
	}
	h.set(func(s *health.Snapshot) { s.Peers, s.PeersErr = nil, os.ErrDeadlineExceeded.Error() })
	if n := testutil.CollectAndCount(c); n != 1 {
		t.Errorf("failing source: %d series, want only podrouter_metrics_source_up", n)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP podrouter_metrics_source_up Whether the last scrape could read the source (1) or not (0).
# TYPE podrouter_metrics_source_up gauge
podrouter_metrics_source_up{source="bgp"} 0
`)); err != nil {
		t.Error(err)
	}
}

// podrouter_bgp_bfd_up exists only for peers with BFD enabled: 1 up, 0 any
// other BFD state.
func TestBFDUpOnlyWithBFD(t *testing.T) {
	h, _, _ := fixture(t)
	c := bgpPart(h)
	const head = `
# HELP podrouter_bgp_bfd_up Whether the session's BFD is up (1) or not (0); only for peers with BFD enabled.
# TYPE podrouter_bgp_bfd_up gauge
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(head+`podrouter_bgp_bfd_up{afi="ipv4",peer="192.0.2.1",peer_asn="65001"} 1
podrouter_bgp_bfd_up{afi="ipv6",peer="2001:db8::1",peer_asn="65001"} 0
`), "podrouter_bgp_bfd_up"); err != nil {
		t.Error(err)
	}
	h.set(func(s *health.Snapshot) {
		s.Peers = slices.Clone(s.Peers)
		s.Peers[0].BFD, s.Peers[1].BFD = health.BFDOff, health.BFDInit
	})
	if err := testutil.CollectAndCompare(c, strings.NewReader(head+`podrouter_bgp_bfd_up{afi="ipv6",peer="2001:db8::1",peer_asn="65001"} 0
`), "podrouter_bgp_bfd_up"); err != nil {
		t.Error(err)
	}
}
