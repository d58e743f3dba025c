package routes

import (
	"net/netip"
	"testing"
)

func TestOtherEnd(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // "" = not point-to-point
	}{
		{"192.168.1.0/31", "192.168.1.1"},
		{"192.168.1.1/31", "192.168.1.0"},
		{"10.0.0.5/30", "10.0.0.6"},
		{"10.0.0.6/30", "10.0.0.5"},
		{"10.0.0.4/30", ""}, // network address
		{"10.0.0.7/30", ""}, // broadcast
		{"10.0.0.2/24", ""},
		{"2001:db8::/127", "2001:db8::1"},
		{"2001:db8::1/127", "2001:db8::"},
		{"2001:db8::2/64", ""},
		{"2001:db8::1/126", "2001:db8::2"},
		{"2001:db8::2/126", "2001:db8::1"},
		{"2001:db8::3/126", ""},
	} {
		got, ok := otherEnd(netip.MustParsePrefix(c.in))
		if (c.want == "") != !ok || (ok && got != netip.MustParseAddr(c.want)) {
			t.Errorf("otherEnd(%s) = %v, %v; want %q", c.in, got, ok, c.want)
		}
	}
}
