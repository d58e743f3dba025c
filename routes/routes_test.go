package routes

import (
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
)

type configCase struct {
	name    string
	cfg     Config
	want    Config // after defaults, when valid
	wantErr string // substring, "" for valid
}

func TestConfigValidation(t *testing.T) {
	cases := []configCase{
		{"zero takes defaults", Config{}, Config{Protocol: 201, Table: 254, Metric: 20}, ""},
		{"explicit", Config{Protocol: 186, Table: 100, Metric: 5}, Config{Protocol: 186, Table: 100, Metric: 5}, ""},
		{"protocol 255", Config{Protocol: 255}, Config{Protocol: 255, Table: 254, Metric: 20}, ""},
		{"protocol 5", Config{Protocol: 5}, Config{Protocol: 5, Table: 254, Metric: 20}, ""},
		{"protocol redirect", Config{Protocol: 1}, Config{}, "protocol 1"},
		{"protocol kernel", Config{Protocol: 2}, Config{}, "protocol 2"},
		{"protocol boot", Config{Protocol: 3}, Config{}, "protocol 3"},
		{"protocol static", Config{Protocol: 4}, Config{}, "protocol 4"},
		{"protocol negative", Config{Protocol: -1}, Config{}, "protocol -1"},
		{"protocol too big", Config{Protocol: 256}, Config{}, "protocol 256"},
		{"local table", Config{Table: 255}, Config{}, "table 255"},
		{"negative table", Config{Table: -3}, Config{}, "table -3"},
		{"big table", Config{Table: 1 << 20}, Config{Protocol: 201, Table: 1 << 20, Metric: 20}, ""},
		{"negative metric", Config{Metric: -1}, Config{}, "metric -1"},
		{"two errors", Config{Protocol: 2, Table: 255}, Config{}, "table 255"},
		{"netns path kept", Config{NetNSPath: "/run/netns/x"}, Config{Protocol: 201, Table: 254, Metric: 20, NetNSPath: "/run/netns/x"}, ""},
	}
	if strconv.IntSize == 64 { // beyond uint32 only exists with a 64-bit int
		cases = append(cases,
			configCase{"table too big", Config{Table: math.MaxInt}, Config{}, "table "},
			configCase{"metric too big", Config{Metric: math.MaxInt}, Config{}, "metric "})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inst, err := New(tc.cfg, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New(%+v) error %v, want one containing %q", tc.cfg, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%+v): %v", tc.cfg, err)
			}
			if got := inst.Config(); got != tc.want {
				t.Fatalf("config %+v, want %+v", got, tc.want)
			}
		})
	}
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestNormalizeGateways(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fam     Family
		in      []netip.Addr
		want    []netip.Addr
		skipped map[string]string // gateway -> reason
	}{
		{name: "empty", fam: FamilyV4},
		{name: "sorted and deduped", fam: FamilyV4,
			in:   addrs("10.2.0.1", "10.1.0.1", "10.2.0.1", "::ffff:10.1.0.1"),
			want: addrs("10.1.0.1", "10.2.0.1")},
		{name: "wrong family both ways", fam: FamilyV6,
			in:      addrs("10.1.0.1", "2001:db8::1", "::ffff:10.1.0.1"),
			want:    addrs("2001:db8::1"),
			skipped: map[string]string{"10.1.0.1": ReasonWrongFamily}},
		{name: "v6 gateway for v4", fam: FamilyV4,
			in:      addrs("2001:db8::1"),
			skipped: map[string]string{"2001:db8::1": ReasonWrongFamily}},
		{name: "not a gateway", fam: FamilyV4,
			in:      append(addrs("0.0.0.0", "127.0.0.1", "224.0.0.5", "255.255.255.255", "10.0.0.1"), netip.Addr{}),
			want:    addrs("10.0.0.1"),
			skipped: map[string]string{"0.0.0.0": ReasonInvalid, "127.0.0.1": ReasonInvalid, "224.0.0.5": ReasonInvalid, "255.255.255.255": ReasonInvalid, "invalid IP": ReasonInvalid}},
		{name: "v6 specials", fam: FamilyV6,
			in:      addrs("::", "::1", "ff02::2"),
			skipped: map[string]string{"::": ReasonInvalid, "::1": ReasonInvalid, "ff02::2": ReasonInvalid}},
		{name: "zones kept and distinct", fam: FamilyV6,
			in:   addrs("fe80::1%up2", "fe80::1%up1", "fe80::1%up1"),
			want: addrs("fe80::1%up1", "fe80::1%up2")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, skipped := normalizeGateways(tc.fam, tc.in)
			if !slices.Equal(got, tc.want) {
				t.Errorf("gateways %v, want %v", got, tc.want)
			}
			gotSkipped := map[string]string{}
			for _, s := range skipped {
				gotSkipped[s.Gateway.String()] = s.Reason
			}
			if len(tc.skipped) == 0 {
				tc.skipped = map[string]string{}
			}
			if !mapsEqual(gotSkipped, tc.skipped) {
				t.Errorf("skipped %v, want %v", gotSkipped, tc.skipped)
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func hop(gw string, link int) NextHop {
	return NextHop{Gateway: netip.MustParseAddr(gw), LinkIndex: link, Link: "x"}
}

func TestSameHops(t *testing.T) {
	a, b, c := hop("10.1.0.1", 2), hop("10.2.0.1", 3), hop("10.3.0.1", 4)
	for _, tc := range []struct {
		name string
		x, y []NextHop
		want bool
	}{
		{"both empty", nil, []NextHop{}, true},
		{"empty vs one", nil, []NextHop{a}, false},
		{"order", []NextHop{a, b, c}, []NextHop{c, a, b}, true},
		{"duplicates", []NextHop{a, a, b}, []NextHop{b, a}, true},
		{"subset", []NextHop{a, b}, []NextHop{a, b, c}, false},
		{"same gateway other link", []NextHop{hop("10.1.0.1", 2)}, []NextHop{hop("10.1.0.1", 5)}, false},
		{"zone ignored", []NextHop{hop("fe80::1%up1", 2)}, []NextHop{hop("fe80::1", 2)}, true},
		{"link name ignored", []NextHop{{Gateway: a.Gateway, LinkIndex: 2, Link: "old"}}, []NextHop{a}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sameHops(tc.x, tc.y); got != tc.want {
				t.Fatalf("sameHops(%v, %v) = %v", tc.x, tc.y, got)
			}
			if got := sameHops(tc.y, tc.x); got != tc.want {
				t.Fatalf("sameHops not symmetric for %v, %v", tc.x, tc.y)
			}
		})
	}
	if got := dedupeHops([]NextHop{c, a, b, a}); !slices.Equal(got, []NextHop{a, b, c}) {
		t.Fatalf("dedupeHops = %v", got)
	}
}

func TestResultErr(t *testing.T) {
	if (Result{}).Err() != nil {
		t.Fatal("unblocked result has an error")
	}
	if (Result{ForeignBlocking: true}).Err() != ErrForeignDefault {
		t.Fatal("blocked result lacks ErrForeignDefault")
	}
}
