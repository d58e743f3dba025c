package config

import (
	"strings"
	"testing"
	"time"
)

// FuzzParse runs arbitrary bytes through the whole pipeline (decode,
// defaults, validation). It must not panic, must answer within 2 s for any
// input up to MaxFileSize, and whatever it accepts must validate again
// unchanged and carry its bounds (the node name, the pod CIDRs).
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(good + "---\nnode: {name: x}\n"))
	f.Add([]byte(good + "bgp: {asn: 1}\n"))
	f.Add([]byte("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"))
	f.Add([]byte(strings.Replace(good, "asn: 4200000001", "asn: [1, 2]", 1)))
	f.Add([]byte(strings.Replace(good, "192.168.1.0", "\"fe80::1%eth0\"", 1)))
	f.Add([]byte(strings.Replace(good, `podCIDRs: ["10.0.1.0/24", "fd00:10:0:1::/64"]`, `podCIDRs: ["10.0.1.0/24", "10.0.1.0/25", "10.0.0.0/8"]`, 1)))
	f.Add([]byte(good + "datapath: {enabled: true, uplinks: [eth0], passCIDRs: [\"10.96.0.0/12\"]}\n"))
	f.Add([]byte(good + "kubernetes: {enabled: true, asnBase: 4200000000}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		start := time.Now()
		c, err := Parse(b)
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("Parse took %s for %d bytes", took, len(b))
		}
		if err != nil {
			if err.Error() == "" {
				t.Fatal("error without a message")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config fails validation again: %v", err)
		}
		if len(c.Node.Name) > 253 {
			t.Fatalf("accepted a node name of %d bytes", len(c.Node.Name))
		}
		for _, p := range c.PodCIDRs {
			if !p.IsValid() || p.Masked() != p || p.Bits() == 0 {
				t.Fatalf("accepted pod CIDR %v", p)
			}
		}
	})
}

func TestLongLivedStaleTime(t *testing.T) {
	for _, tc := range []struct {
		gr, want string
	}{
		{"{longLivedStaleTime: 1h}", ""},
		{"{longLivedStaleTime: 500ms}", "longLivedStaleTime"},
		{"{longLivedStaleTime: 200000h}", "longLivedStaleTime"},
		{"{enabled: false, longLivedStaleTime: 1h}", "needs gracefulRestart.enabled"},
	} {
		conf := strings.Replace(good, "{address: 192.168.1.0, asn: 65100}", "{address: 192.168.1.0, asn: 65100, gracefulRestart: "+tc.gr+"}", 1)
		c, err := Parse([]byte(conf))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.gr, err)
		case tc.want == "" && c.BGP.Peers[0].GracefulRestart.LongLivedStaleTime != time.Hour:
			t.Errorf("%s: parsed %+v", tc.gr, c.BGP.Peers[0].GracefulRestart)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want it to name %q", tc.gr, err, tc.want)
		}
	}
}
