package metrics

import (
	"bytes"
	"flag"
	"log/slog"
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
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func fixture(t *testing.T) (*fakePeers, *fakeAgent, *fakeRoutes, *fakeDatapath) {
	peers := &fakePeers{t: t, peers: []Peer{
		{Address: netip.MustParseAddr("192.0.2.1"), ASN: 65001, AFI: "ipv4", State: "established",
			Uptime: 90 * time.Second, Flaps: 2, Received: 10, Accepted: 1, Advertised: 1, MaxPrefixTrips: 1, UpdatesIn: 12, UpdatesOut: 3, GRState: "enabled", BFD: "up"},
		{Address: netip.MustParseAddr("2001:db8::1"), ASN: 65001, AFI: "ipv6", State: "active", BFD: "down"},
	}}
	ag := &fakeAgent{st: AgentState{
		Reconciles: 7, Errors: 1, LastAt: time.Unix(1700000000, 500e6), LastDuration: 1500 * time.Microsecond,
		Families: []FamilyState{
			{Family: "ipv4", Learned: 2, Installed: 2},
			{Family: "ipv6", Learned: 0, Installed: 1, Holding: true, ForeignPresent: true},
		},
	}}
	rt := &fakeRoutes{st: RouteStats{Installs: 3, Removals: 1, DriftMissing: 2, DriftChanged: 1, ForeignSeen: 1,
		Writes: 5, WriteErrors: 1, DumpsInterrupted: 4, Resubscriptions: 0}}
	dp := &fakeDatapath{t: t,
		st: DatapathState{Mode: DatapathLoaded, Uplinks: []string{"eth0"}, Endpoints: []string{"veth1", "veth2"}, GCRuns: 4, GCRemoved: 17, GCLastDuration: 1500 * time.Microsecond},
		counters: []DatapathCounter{
			{Direction: "from-endpoint", Reason: "fwd-redirect-neigh", Packets: 100, Bytes: 9000},
			{Direction: "from-network", Reason: "drop-malformed", Packets: 3, Bytes: 180},
		},
		usage: []MapUsage{{Map: "ct_tcp", Entries: 512, Capacity: 1024}, {Map: "ct_other", Entries: 0, Capacity: 256}},
	}
	return peers, ag, rt, dp
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
	peers, ag, rt, dp := fixture(t)
	log := slog.New(slog.DiscardHandler)
	golden(t, newBGPCollector(peers, log, time.Second), "bgp.prom")
	golden(t, newRoutesCollector(ag, rt), "routes.prom")
	golden(t, newDatapathCollector(dp, log), "datapath.prom")
}

func TestDatapathStates(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name string
		src  DatapathSource
	}{
		{"disabled", nil},
		{"starting", &fakeDatapath{t: t, st: DatapathState{Mode: DatapathStarting, Reason: "starting"}}},
		{"fallback", &fakeDatapath{t: t, st: DatapathState{Mode: DatapathFallback, Reason: "unavailable", Detail: "ebpf fast path unavailable: no bpffs"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			golden(t, newDatapathCollector(tc.src, log), "datapath-"+tc.name+".prom")
		})
	}
}

// A peer removed from the configuration loses all of its series at the
// next scrape; a source that fails shows as source_up 0, without stale
// series.
func TestRemovedPeerSeriesVanish(t *testing.T) {
	peers, _, _, _ := fixture(t)
	c := newBGPCollector(peers, slog.New(slog.DiscardHandler), time.Second)
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
	peers.set(peers.peers[:1], nil)
	if v4b, v6b := count(); v4b != v4 || v6b != 0 {
		t.Errorf("after removing the v6 peer: %d v4 series (want %d), %d v6 series (want 0)", v4b, v4, v6b)
	}
	peers.set(nil, os.ErrDeadlineExceeded)
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
	peers, _, _, _ := fixture(t)
	c := newBGPCollector(peers, slog.New(slog.DiscardHandler), time.Second)
	const head = `
# HELP podrouter_bgp_bfd_up Whether the session's BFD is up (1) or not (0); only for peers with BFD enabled.
# TYPE podrouter_bgp_bfd_up gauge
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(head+`podrouter_bgp_bfd_up{afi="ipv4",peer="192.0.2.1",peer_asn="65001"} 1
podrouter_bgp_bfd_up{afi="ipv6",peer="2001:db8::1",peer_asn="65001"} 0
`), "podrouter_bgp_bfd_up"); err != nil {
		t.Error(err)
	}
	ps := slices.Clone(peers.peers)
	ps[0].BFD, ps[1].BFD = "", "init"
	peers.set(ps, nil)
	if err := testutil.CollectAndCompare(c, strings.NewReader(head+`podrouter_bgp_bfd_up{afi="ipv6",peer="2001:db8::1",peer_asn="65001"} 0
`), "podrouter_bgp_bfd_up"); err != nil {
		t.Error(err)
	}
}
