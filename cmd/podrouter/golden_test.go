package main

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/podrouter/podrouter/api"
	"github.com/podrouter/podrouter/datapath"
	"github.com/podrouter/podrouter/health"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// golden compares got with testdata/name.golden (or rewrites it with -update).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -run %s -update rewrites it)\n--- got\n%s\n--- want\n%s", path, t.Name(), got, want)
	}
}

var (
	at      = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	addrs   = func(ss ...string) []netip.Addr { return mapSlice(ss, netip.MustParseAddr) }
	pfxs    = func(ss ...string) []netip.Prefix { return mapSlice(ss, netip.MustParsePrefix) }
	peersOK = []api.Peer{
		{Address: netip.MustParseAddr("192.168.1.1"), ASN: 65000, State: health.SessionEstablished, AdminState: health.AdminUp, Uptime: "5m0s", Received: 1, Accepted: 1, Advertised: 1, BFD: health.BFDUp},
		{Address: netip.MustParseAddr("fd00:192:168:1::1"), ASN: 65000, State: health.SessionEstablished, AdminState: health.AdminUp, Uptime: "5m0s", Received: 1, Accepted: 1, Advertised: 1},
	}
)

func mapSlice[T any](ss []string, f func(string) T) []T {
	out := make([]T, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	return out
}

func baseStatus() api.Status {
	return api.Status{
		Node: "node1", RouterID: "10.255.0.1", ASN: 65001,
		PodCIDRs:   pfxs("fd00:10:0:1::/64", "10.0.1.0/24"),
		Advertised: pfxs("10.0.1.0/24", "fd00:10:0:1::/64"),
		Peers:      peersOK,
		Defaults: []api.DefaultRoute{
			{Family: "ipv4", Learned: addrs("192.168.1.1"), Installed: addrs("192.168.1.1")},
			{Family: "ipv6", Learned: addrs("fe80::1"), Installed: addrs("fe80::1")},
		},
		LastReconcile: at.Add(-1500 * time.Millisecond), ReconcileTook: "2.1ms", Reconciles: 42,
	}
}

func TestPrintStatusGolden(t *testing.T) {
	active := health.Datapath{
		State: health.DatapathActive, PinDir: "/sys/fs/bpf/podrouter", Uplinks: []string{"up1", "up2"},
		FromNetwork: []string{"up1"}, FromEndpoint: []string{"veth1a2b", "veth3c4d"},
		Maps: []health.MapUsage{
			{Map: "ct_tcp", Entries: 12, Capacity: 262144},
			{Map: "ct_other", Entries: 61000, Capacity: 65536},
			{Map: "endpoints", Entries: 4, Capacity: 4096},
		},
	}
	services := health.Services{
		Learned: true, Synced: true, ServiceCIDRs: pfxs("10.96.0.0/16", "fd00:96::/112"),
		PassCIDRs: pfxs("10.96.0.0/16", "192.0.2.0/24", "fd00:96::/112"),
		Proxy:     health.ProxySupported, ProxyMode: "nftables", KernelConntrack: "nat", KernelConntrackAuto: true,
	}
	unavailable := health.Datapath{State: health.DatapathUnavailable, PinDir: "/x",
		Reason: "ebpf fast path unavailable: /x is not on a bpf filesystem", Cause: "/x is not on a bpf filesystem"}
	// fastPath renders d as the daemon does (api.StatusOf).
	fastPath := func(d health.Datapath) api.FastPath { return api.StatusOf(health.Snapshot{Datapath: d}).FastPath }
	cases := map[string]func(*api.Status){
		"status_ebpf": func(r *api.Status) {
			r.FastPath = fastPath(active)
			r.Services = api.StatusOf(health.Snapshot{Services: services}).Services
			r.Warnings = active.Warnings()
		},
		"status_ebpf_ipvs": func(r *api.Status) {
			r.FastPath = fastPath(active)
			ipvs := services
			ipvs.Proxy, ipvs.ProxyMode, ipvs.KernelConntrack = health.ProxyUnsupported, "ipvs", "any"
			r.Services = api.StatusOf(health.Snapshot{Services: ipvs}).Services
			r.Warnings = ipvs.Warnings(health.DatapathActive)
		},
		"status_kernel_disabled": func(r *api.Status) {
			r.FastPath = fastPath(health.Datapath{})
		},
		"status_kernel_unavailable": func(r *api.Status) {
			r.FastPath = fastPath(unavailable)
			r.Defaults[1] = api.DefaultRoute{Family: "ipv6", Holding: true}
			r.Peers[1].State, r.Peers[1].AdminState = health.SessionActive, health.AdminPfxCt
			r.LastError = "read learned defaults: boom"
			r.Warnings = append(unavailable.Warnings(), "peer fd00:192:168:1::1 is active")
		},
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			r := baseStatus()
			r.Peers = append([]api.Peer(nil), r.Peers...)
			edit(&r)
			var b bytes.Buffer
			printStatus(&b, r, at)
			golden(t, name, b.Bytes())
		})
	}
}

func ctFixture() []datapath.CTEntry {
	ap := netip.MustParseAddrPort
	return []datapath.CTEntry{
		{Proto: 17, Src: ap("[fd00:10:0:1::2]:53000"), Dst: ap("[fd00:10:0:3::3]:53"), Packets: [2]uint64{1, 1}, Bytes: [2]uint64{80, 120},
			Age: 3500 * time.Millisecond, Expires: 56 * time.Second, SeenReply: true, IngressIndex: 12},
		{Proto: 6, Src: ap("10.0.1.2:40000"), Dst: ap("10.0.3.3:80"), Packets: [2]uint64{10, 8}, Bytes: [2]uint64{900, 12000},
			Age: 90 * time.Second, Expires: 6 * time.Hour, SeenReply: true, Stack: true, IngressIndex: 12},
		{Proto: 1, Src: ap("10.0.3.3:4711"), Dst: ap("10.0.1.2:4711"), Packets: [2]uint64{3, 3}, Bytes: [2]uint64{294, 294},
			Age: 2 * time.Second, Expires: 28 * time.Second, SeenReply: true, IngressIndex: 3},
		{Proto: 6, Src: ap("10.0.1.2:39999"), Dst: ap("10.0.2.7:443"), Packets: [2]uint64{4, 3}, Bytes: [2]uint64{300, 400},
			Age: 40 * time.Second, Expires: -2 * time.Second, Closing: true, SeenReply: true, IngressIndex: 12},
		{Proto: 6, Src: ap("10.0.1.3:50000"), Dst: ap("10.0.3.3:80"), Packets: [2]uint64{1, 0}, Bytes: [2]uint64{60, 0},
			Age: time.Second, Expires: 59 * time.Second, IngressIndex: 13},
	}
}

func TestCTTableGolden(t *testing.T) {
	names := map[int]string{3: "up1", 12: "veth1a2b"}
	ifname := func(i int) string {
		if n, ok := names[i]; ok {
			return n
		}
		return fmt.Sprintf("if%d", i)
	}
	es := ctFixture()
	sortCT(es)
	var b bytes.Buffer
	if err := writeCTTable(&b, es, ifname); err != nil {
		t.Fatal(err)
	}
	golden(t, "ct_list", b.Bytes())
}

func TestCTFilter(t *testing.T) {
	cases := []struct {
		ip    string
		port  int
		proto string
		want  int // matching entries of ctFixture
	}{
		{"", -1, "", 5},
		{"10.0.3.3", -1, "", 3},
		{"10.0.1.2", -1, "tcp", 2},
		{"::ffff:10.0.1.2", -1, "icmp", 1},
		{"", 80, "", 2},
		{"", 4711, "ICMP", 1},
		{"", 53, "udp", 1},
		{"fd00:10:0:3::3", -1, "", 1},
		{"", -1, "icmpv6", 0},
	}
	for _, c := range cases {
		f, err := parseCTFilter(c.ip, c.port, c.proto)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range ctFixture() {
			if f.match(e) {
				n++
			}
		}
		if n != c.want {
			t.Errorf("--ip %q --port %d --proto %q: %d entries, want %d", c.ip, c.port, c.proto, n, c.want)
		}
	}
	for _, bad := range []struct {
		ip    string
		port  int
		proto string
	}{{"10.0.0", -1, ""}, {"", 70000, ""}, {"", -1, "sctp"}} {
		if _, err := parseCTFilter(bad.ip, bad.port, bad.proto); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
	if f, _ := parseCTFilter("", -1, ""); f.any() {
		t.Error("no flags: want a filter matching everything")
	}
}
