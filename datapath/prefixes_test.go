package datapath

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestMergePrefixes(t *testing.T) {
	p := netip.MustParsePrefix
	got := mergePrefixes(
		[]netip.Prefix{p("10.96.0.0/12"), p("fd00:10:96::/112")},
		[]netip.Prefix{p("10.96.1.2/12"), p("10.0.0.0/8"), p("fd00:10:96::/112")},
	)
	if want := "[10.0.0.0/8 10.96.0.0/12 fd00:10:96::/112]"; fmt.Sprint(got) != want {
		t.Errorf("merged %v, want %s", got, want)
	}
	if got := mergePrefixes(nil, nil); len(got) != 0 {
		t.Errorf("merged empty lists: %v", got)
	}
}

func TestValidatePrefixes(t *testing.T) {
	p := netip.MustParsePrefix
	many := make([]netip.Prefix, 0, maxLPM+1)
	for i := range maxLPM + 1 {
		many = append(many, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24))
	}
	dups := make([]netip.Prefix, 2*maxLPM)
	for i := range dups {
		dups[i] = many[i%maxLPM]
	}
	for _, tc := range []struct {
		name string
		in   []netip.Prefix
		err  string // "" = valid
	}{
		{"empty", nil, ""},
		{"v4 and v6", []netip.Prefix{p("10.96.0.0/12"), p("fd00:10:96::/112")}, ""},
		{"zero prefix", []netip.Prefix{{}}, "invalid"},
		{"ipv4-mapped", []netip.Prefix{p("::ffff:10.0.0.0/104")}, "IPv4-mapped"},
		{"too many", many, "at most 256"},
		{"duplicates count once", dups, ""},
	} {
		err := validatePrefixes(tc.in)
		if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
		}
	}
	if _, err := New(Config{PassCIDRs: []netip.Prefix{p("::ffff:10.0.0.0/104")}}, nil); err == nil {
		t.Errorf("New accepted an IPv4-mapped pass prefix")
	}
	if _, err := New(Config{KernelConntrack: KernelCTAny + 1}, nil); err == nil {
		t.Errorf("New accepted an unknown kernel conntrack mode")
	}
}
