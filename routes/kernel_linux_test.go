package routes

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Pure tests of the kernel-view logic on hand-made netlink values: no root.

func ipnet(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

func v4route(dst string, mod func(*netlink.Route)) netlink.Route {
	r := netlink.Route{Family: netlink.FAMILY_V4, Table: 254, Type: unix.RTN_UNICAST, Protocol: unix.RTPROT_KERNEL}
	if dst != "" {
		r.Dst = ipnet(dst)
	}
	if mod != nil {
		mod(&r)
	}
	return r
}

func TestIsDefault(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    netlink.Route
		fam  Family
		want bool
	}{
		{"no RTA_DST", v4route("", nil), FamilyV4, true},
		{"0.0.0.0/0", v4route("0.0.0.0/0", nil), FamilyV4, true},
		{"0.0.0.0/0 asked as v6", v4route("0.0.0.0/0", nil), FamilyV6, false},
		{"::/0", netlink.Route{Family: netlink.FAMILY_V6, Dst: ipnet("::/0")}, FamilyV6, true},
		{"v6 no dst", netlink.Route{Family: netlink.FAMILY_V6}, FamilyV6, true},
		{"0.0.0.0/1", v4route("0.0.0.0/1", nil), FamilyV4, false},
		{"host route", v4route("10.0.0.1/32", nil), FamilyV4, false},
		{"blackhole default still a default", v4route("", func(r *netlink.Route) { r.Type = unix.RTN_BLACKHOLE }), FamilyV4, true},
		{"cloned", v4route("", func(r *netlink.Route) { r.Flags = unix.RTM_F_CLONED }), FamilyV4, false},
		{"mpls", netlink.Route{Family: nl.FAMILY_MPLS, MPLSDst: new(int)}, FamilyV4, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := isDefault(tc.r, tc.fam); got != tc.want {
				t.Fatalf("isDefault = %v, want %v", got, tc.want)
			}
		})
	}
	own := v4route("", func(r *netlink.Route) { r.Protocol = 201 })
	if !isOwnDefault(own, FamilyV4, 201) || isOwnDefault(own, FamilyV4, 202) || isOwnDefault(v4route("", nil), FamilyV4, 201) {
		t.Fatal("isOwnDefault")
	}
}

func TestIsConnected(t *testing.T) {
	onLink := func(r *netlink.Route) { r.LinkIndex = 2; r.Scope = netlink.SCOPE_LINK }
	for _, tc := range []struct {
		name string
		r    netlink.Route
		want bool
	}{
		{"subnet on link", v4route("10.1.0.0/24", onLink), true},
		{"host route on link", v4route("169.254.0.1/32", onLink), true},
		{"via gateway", v4route("10.1.0.0/24", func(r *netlink.Route) { onLink(r); r.Gw = net.ParseIP("10.9.0.1") }), false},
		{"default dev", v4route("", onLink), false},
		{"no link", v4route("10.1.0.0/24", nil), false},
		{"blackhole", v4route("10.1.0.0/24", func(r *netlink.Route) { onLink(r); r.Type = unix.RTN_BLACKHOLE }), false},
		{"multipath", v4route("10.1.0.0/24", func(r *netlink.Route) {
			onLink(r)
			r.MultiPath = []*netlink.NexthopInfo{{LinkIndex: 2}}
		}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := isConnected(tc.r, FamilyV4); got != tc.want {
				t.Fatalf("isConnected = %v, want %v", got, tc.want)
			}
		})
	}
}

// testSnapshot: up1 (2) and up2 (3) are up; up3 (4) is admin down; up4 (5)
// has no carrier; up5 (6) is up but operstate dormant.
func testSnapshot(fam Family, routes ...netlink.Route) *snapshot {
	s := &snapshot{fam: fam, links: map[int]linkState{}, byName: map[string]int{}, routes: routes}
	add := func(ls linkState) { s.links[ls.index] = ls; s.byName[ls.name] = ls.index }
	add(linkState{index: 2, name: "up1", admin: true, carrier: true, oper: netlink.OperUp})
	add(linkState{index: 3, name: "up2", admin: true, carrier: true, oper: netlink.OperUnknown})
	add(linkState{index: 4, name: "up3", admin: false, carrier: false, oper: netlink.OperDown})
	add(linkState{index: 5, name: "up4", admin: true, carrier: false, oper: netlink.OperLowerLayerDown})
	add(linkState{index: 6, name: "up5", admin: true, carrier: true, oper: netlink.OperDormant})
	return s
}

func conn(dst string, link int) netlink.Route {
	return v4route(dst, func(r *netlink.Route) { r.LinkIndex = link; r.Scope = netlink.SCOPE_LINK })
}

func TestResolve(t *testing.T) {
	s := testSnapshot(FamilyV4,
		conn("10.1.0.0/24", 2),
		conn("10.2.0.0/16", 3),
		v4route("10.2.5.0/24", func(r *netlink.Route) { r.Gw = net.ParseIP("10.1.0.1"); r.LinkIndex = 2 }), // more specific, via a gateway
		conn("10.3.0.0/24", 4),
		conn("10.4.0.0/24", 5),
		conn("10.6.0.0/24", 6),
		conn("10.7.0.0/24", 2),
		func() netlink.Route { r := conn("10.7.0.0/24", 3); r.Table = 100; return r }(), // our table wins
		v4route("10.8.0.0/24", func(r *netlink.Route) { r.Type = unix.RTN_UNREACHABLE }),
		v4route("10.1.0.2/32", func(r *netlink.Route) { r.Table = 255; r.Type = unix.RTN_LOCAL; r.LinkIndex = 2 }),
		v4route("", func(r *netlink.Route) { r.Gw = net.ParseIP("10.1.0.1"); r.LinkIndex = 2 }), // a default never counts
	)
	s.addrs = []netlink.Addr{{IPNet: ipnet("10.9.0.2/24"), LinkIndex: 4}} // address kept on a link set down
	for _, tc := range []struct {
		gw, link, reason string
		table, lastLink  int
	}{
		{gw: "10.1.0.1", link: "up1"},
		{gw: "10.2.9.1", link: "up2"},
		{gw: "10.2.5.1", reason: ReasonNotConnected},
		{gw: "10.3.0.1", link: "up3", reason: ReasonLinkDown},
		{gw: "10.4.0.1", link: "up4", reason: ReasonNoCarrier},
		{gw: "10.6.0.1", link: "up5", reason: ReasonNotOper},
		{gw: "10.7.0.1", link: "up1"},
		{gw: "10.7.0.1", link: "up2", table: 100},
		{gw: "10.1.0.1", link: "up1", table: 100}, // falls back to main
		{gw: "10.8.0.1", reason: ReasonNotConnected},
		{gw: "10.1.0.2", link: "up1", reason: ReasonLocal},
		{gw: "10.99.0.1", reason: ReasonNotConnected},
		{gw: "10.9.0.1", link: "up3", reason: ReasonLinkDown},
		{gw: "10.99.0.1", link: "up4", reason: ReasonNoCarrier, lastLink: 5},
		{gw: "10.99.0.1", reason: ReasonNotConnected, lastLink: 2},
	} {
		table := tc.table
		if table == 0 {
			table = 254
		}
		nh, skip := resolve(s, table, netip.MustParseAddr(tc.gw), tc.lastLink)
		switch {
		case tc.reason == "" && skip != nil:
			t.Errorf("%s table %d: skipped %v", tc.gw, table, skip)
		case tc.reason == "" && nh.Link != tc.link:
			t.Errorf("%s table %d: on %q, want %q", tc.gw, table, nh.Link, tc.link)
		case tc.reason != "" && (skip == nil || skip.Reason != tc.reason || skip.Link != tc.link):
			t.Errorf("%s table %d: got %+v / %v, want skipped %q on %q", tc.gw, table, nh, skip, tc.reason, tc.link)
		}
	}
}

func TestResolveLinkLocal(t *testing.T) {
	v6conn := func(dst string, link int) netlink.Route {
		return netlink.Route{Family: netlink.FAMILY_V6, Table: 254, Type: unix.RTN_UNICAST, Dst: ipnet(dst), LinkIndex: link}
	}
	s := testSnapshot(FamilyV6, v6conn("fe80::/64", 2), v6conn("fe80::/64", 3), v6conn("fe80::/64", 5))
	for _, tc := range []struct{ gw, link, reason string }{
		{"fe80::1%up1", "up1", ""},
		{"fe80::1%up2", "up2", ""},
		{"fe80::1%up4", "up4", ReasonNoCarrier},
		{"fe80::1%up3", "up3", ReasonNotConnected}, // down: its fe80::/64 is gone
		{"fe80::1", "", ReasonNotConnected},
		{"fe80::1%nosuch", "nosuch", ReasonNoLink},
	} {
		nh, skip := resolve(s, 254, netip.MustParseAddr(tc.gw), 0)
		if tc.reason == "" {
			if skip != nil || nh.Link != tc.link || nh.Gateway.Zone() != tc.link {
				t.Errorf("%s: %+v %v", tc.gw, nh, skip)
			}
			continue
		}
		if skip == nil || skip.Reason != tc.reason || skip.Link != tc.link {
			t.Errorf("%s: %+v %v, want %q on %q", tc.gw, nh, skip, tc.reason, tc.link)
		}
	}
}

func TestClassifyAndMatches(t *testing.T) {
	cfg := Config{}.withDefaults()
	ours := v4route("", func(r *netlink.Route) {
		r.Protocol = 201
		r.Priority = 20
		r.MultiPath = []*netlink.NexthopInfo{{Gw: net.ParseIP("10.1.0.1"), LinkIndex: 2}, {Gw: net.ParseIP("10.2.0.1"), LinkIndex: 3}}
	})
	static0 := v4route("", func(r *netlink.Route) { r.Protocol = unix.RTPROT_BOOT; r.Gw = net.ParseIP("10.1.0.1"); r.LinkIndex = 2 })
	static20 := static0
	static20.Priority = 20
	strayMetric := ours
	strayMetric.Priority = 50
	strayTable := ours
	strayTable.Table = 100
	otherTable := static0
	otherTable.Table = 100
	s := testSnapshot(FamilyV4, ours, static0, static20, strayMetric, strayTable, otherTable, conn("10.1.0.0/24", 2))
	d := classify(s, cfg)
	if len(d.oursAtKey) != 1 || len(d.foreignAtKey) != 1 || len(d.foreignOther) != 1 || len(d.strays) != 2 {
		t.Fatalf("classify: %d ours, %d foreign at key, %d foreign other, %d strays",
			len(d.oursAtKey), len(d.foreignAtKey), len(d.foreignOther), len(d.strays))
	}

	h1, h2 := NextHop{Gateway: netip.MustParseAddr("10.1.0.1"), LinkIndex: 2}, NextHop{Gateway: netip.MustParseAddr("10.2.0.1"), LinkIndex: 3}
	if !matches(d.oursAtKey, s, []NextHop{h2, h1}) {
		t.Error("same hops in other order do not match")
	}
	if matches(d.oursAtKey, s, []NextHop{h1}) || matches(d.oursAtKey, s, nil) || matches(nil, s, []NextHop{h1}) {
		t.Error("different hops match")
	}
	if !matches(nil, s, nil) {
		t.Error("nothing vs nothing does not match")
	}
	dead := ours
	dead.MultiPath = []*netlink.NexthopInfo{{Gw: net.ParseIP("10.1.0.1"), LinkIndex: 2, Flags: unix.RTNH_F_DEAD}, {Gw: net.ParseIP("10.2.0.1"), LinkIndex: 3}}
	if matches([]netlink.Route{dead}, s, []NextHop{h1, h2}) {
		t.Error("a dead next hop matches")
	}
	if matches([]netlink.Route{ours, ours}, s, []NextHop{h1, h2}) {
		t.Error("two IPv4 routes of ours at the key match")
	}
	v6 := func(gw string, link int) netlink.Route {
		return netlink.Route{Family: netlink.FAMILY_V6, Table: 254, Type: unix.RTN_UNICAST, Protocol: 201, Priority: 20, Gw: net.ParseIP(gw), LinkIndex: link}
	}
	s6 := testSnapshot(FamilyV6, v6("2001:db8:1::1", 2), v6("2001:db8:2::1", 3))
	if d := classify(s6, cfg); len(d.oursAtKey) != 2 || !matches(d.oursAtKey, s6, []NextHop{
		{Gateway: netip.MustParseAddr("2001:db8:2::1"), LinkIndex: 3}, {Gateway: netip.MustParseAddr("2001:db8:1::1"), LinkIndex: 2},
	}) {
		t.Error("IPv6 siblings dumped as separate routes do not match their union")
	}
	bh := ours
	bh.MultiPath, bh.Type = nil, unix.RTN_BLACKHOLE
	if matches([]netlink.Route{bh}, s, []NextHop{h1}) {
		t.Error("a blackhole of ours matches")
	}
}

func TestLinkChanged(t *testing.T) {
	seen := map[int]linkSig{}
	upd := func(typ uint16, flags uint32, oper netlink.LinkOperState) netlink.LinkUpdate {
		l := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 7, RawFlags: flags, OperState: oper}}
		return netlink.LinkUpdate{Header: unix.NlMsghdr{Type: typ}, Link: l}
	}
	up := uint32(unix.IFF_UP | unix.IFF_LOWER_UP | unix.IFF_RUNNING)
	steps := []struct {
		u    netlink.LinkUpdate
		want bool
	}{
		{upd(unix.RTM_NEWLINK, up, netlink.OperUp), true},                       // first sight
		{upd(unix.RTM_NEWLINK, up|unix.IFF_PROMISC, netlink.OperUp), false},     // irrelevant flag
		{upd(unix.RTM_NEWLINK, unix.IFF_UP, netlink.OperUp), true},              // carrier lost
		{upd(unix.RTM_NEWLINK, unix.IFF_UP, netlink.OperLowerLayerDown), true},  // operstate follows
		{upd(unix.RTM_NEWLINK, unix.IFF_UP, netlink.OperLowerLayerDown), false}, // repeat
		{upd(unix.RTM_DELLINK, 0, netlink.OperDown), true},
	}
	for n, st := range steps {
		if got := linkChanged(seen, st.u); got != st.want {
			t.Fatalf("step %d: linkChanged = %v, want %v", n, got, st.want)
		}
	}
}

func TestRouteRelevant(t *testing.T) {
	inst, err := New(Config{Table: 100}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		r    netlink.Route
		want bool
	}{
		{"default in main", v4route("", nil), true},
		{"connected in main", conn("10.1.0.0/24", 2), true},
		{"default in our table", v4route("", func(r *netlink.Route) { r.Table = 100 }), true},
		{"ours in another table", v4route("", func(r *netlink.Route) { r.Table = 7; r.Protocol = 201 }), true},
		{"other table", v4route("", func(r *netlink.Route) { r.Table = 7 }), false},
		{"local table", v4route("10.1.0.2/32", func(r *netlink.Route) { r.Table = 255; r.Type = unix.RTN_LOCAL }), false},
		{"cloned", v4route("10.1.0.5/32", func(r *netlink.Route) { r.Flags = unix.RTM_F_CLONED }), false},
	} {
		if got := inst.routeRelevant(tc.r); got != tc.want {
			t.Errorf("%s: routeRelevant = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDumpRetriesInterrupted(t *testing.T) {
	inst, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	got, err := dump(t.Context(), inst, "list things", func() ([]int, error) {
		calls++
		if calls < 3 {
			return []int{1}, netlink.ErrDumpInterrupted // partial result: must be dropped
		}
		return []int{1, 2, 3}, nil
	})
	if err != nil || len(got) != 3 || calls != 3 || inst.Stats().DumpsInterrupted != 2 {
		t.Fatalf("got %v, %v after %d calls, stats %+v", got, err, calls, inst.Stats())
	}
	_, err = dump(t.Context(), inst, "list things", func() ([]int, error) { return []int{1}, netlink.ErrDumpInterrupted })
	if !errors.Is(err, netlink.ErrDumpInterrupted) {
		t.Fatalf("endless interruption: %v", err)
	}
	_, err = dump(t.Context(), inst, "list things", func() ([]int, error) { return nil, unix.EPERM })
	if !errors.Is(err, unix.EPERM) {
		t.Fatalf("other error: %v", err)
	}
}
