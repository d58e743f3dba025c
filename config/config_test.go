package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const good = `
node: {name: node1, routerID: 192.168.255.1}
podCIDRs: ["10.0.1.0/24", "fd00:10:0:1::/64"]
bgp:
  asn: 4200000001
  api: {address: "127.0.0.1:50051"}
  peers:
    - {address: 192.168.1.0, asn: 65100}
    - {address: "fd00:1:1::1", asn: 65100, holdTime: 30s, keepaliveInterval: 10s, ttlMin: 255, bfd: {enabled: true, minRx: 50ms}}
`

func TestParseGoodAndDefaults(t *testing.T) {
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	p := c.BGP.Peers[0]
	if p.HoldTime.Duration != 9*time.Second || p.KeepaliveInterval.Duration != 3*time.Second || !*p.GracefulRestart.Enabled ||
		p.GracefulRestart.RestartTime.Duration != 120*time.Second || p.ConnectRetry.Duration != 5*time.Second {
		t.Errorf("peer defaults not applied: %+v", p)
	}
	if c.BGP.ListenPort != 179 || c.Routes.Protocol != 201 || c.Routes.Metric != 20 || c.Routes.Table != 254 ||
		c.Shutdown.Mode != ShutdownGracefulRestart || c.LocalAPI.Socket != DefaultSocket {
		t.Errorf("defaults not applied: %+v", c)
	}
	if c.BGP.ASN != 4200000001 {
		t.Errorf("4-byte ASN: got %d", c.BGP.ASN)
	}
	ps, _ := c.Prefixes()
	if len(ps) != 2 || !ps[1].Addr().Is6() {
		t.Errorf("prefixes %v", ps)
	}
	if c.BGP.Drain.Mode != DrainWithdraw || c.BGP.AutoPeers.Enabled {
		t.Errorf("drain/autoPeers defaults: %+v %+v", c.BGP.Drain, c.BGP.AutoPeers)
	}
	// BFD defaults only when enabled; set values are kept.
	if b := c.BGP.Peers[0].BFD; b != (BFD{}) {
		t.Errorf("disabled BFD got defaults: %+v", b)
	}
	if b := c.BGP.Peers[1].BFD; !b.Enabled || b.MinTx.Duration != 300*time.Millisecond || b.MinRx.Duration != 50*time.Millisecond || b.Multiplier != 3 {
		t.Errorf("BFD defaults not applied: %+v", b)
	}
}

func TestParseAutoPeersAndDeprefer(t *testing.T) {
	c, err := Parse([]byte(good + `  autoPeers: {enabled: true, asn: 65100, ttlMin: 255, bfd: {enabled: true}}
  drain: {mode: deprefer, med: 100}
datapath: {enabled: true, uplinks: [up1, up2]}
`))
	if err != nil {
		t.Fatal(err)
	}
	ap := c.BGP.AutoPeers
	if !*ap.DefaultGateways || strings.Join(ap.Interfaces, ",") != "up1,up2" || ap.HoldTime.Duration != 9*time.Second ||
		!*ap.GracefulRestart.Enabled || ap.TTLMin != 255 || ap.BFD != (BFD{true, Duration{300 * time.Millisecond}, Duration{300 * time.Millisecond}, 3}) {
		t.Errorf("autoPeers defaults not applied: %+v", ap)
	}
	d := c.BGP.Drain
	if d.ASPathPrepend != 3 || !*d.GracefulShutdownCommunity || d.WithdrawAfter.Duration != 30*time.Second || d.MED != 100 {
		t.Errorf("deprefer defaults not applied: %+v", d)
	}
}

// TestBadInput: every bad input is refused with an error naming the field.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	base := func(peer string) string {
		return "node: {name: n, routerID: 10.255.0.1}\npodCIDRs: [10.0.1.0/24]\nbgp:\n  asn: 65001\n  peers:\n    - " + peer + "\n"
	}
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown top field", base("{address: 10.1.0.0, asn: 65100}") + "bogus: 1\n", `unknown field "bogus"`},
		{"unknown peer field", base("{address: 10.1.0.0, asn: 65100, holdtime: 9s}"), `unknown field "bgp.peers[0].holdtime"`},
		{"asn 0", strings.Replace(base("{address: 10.1.0.0, asn: 65100}"), "asn: 65001", "asn: 0", 1), "bgp.asn: ASN 0"},
		{"asn 23456", strings.Replace(base("{address: 10.1.0.0, asn: 65100}"), "asn: 65001", "asn: 23456", 1), "bgp.asn: ASN 23456"},
		{"peer asn 23456", base("{address: 10.1.0.0, asn: 23456}"), "bgp.peers[0].asn: ASN 23456"},
		{"keepalive = hold", base("{address: 10.1.0.0, asn: 65100, holdTime: 9s, keepaliveInterval: 9s}"), "bgp.peers[0].keepaliveInterval"},
		{"keepalive > hold", base("{address: 10.1.0.0, asn: 65100, holdTime: 9s, keepaliveInterval: 10s}"), "bgp.peers[0].keepaliveInterval"},
		{"hold too small", base("{address: 10.1.0.0, asn: 65100, holdTime: 2s, keepaliveInterval: 1s}"), "bgp.peers[0].holdTime"},
		{"bad duration", base("{address: 10.1.0.0, asn: 65100, holdTime: nine}"), "bgp.peers[0].holdTime: line 6"},
		{"bad duration not last", base("{address: 10.1.0.0, holdTime: nine, asn: 65100}"), "bgp.peers[0].holdTime: line 6"},
		{"bad type", base("{address: 10.1.0.0, asn: many}"), "bgp.peers[0].asn: line 6"},
		{"invalid cidr", strings.Replace(base("{address: 10.1.0.0, asn: 65100}"), "10.0.1.0/24", "10.0.1.0/33", 1), "podCIDRs[0]: invalid CIDR"},
		{"host bits", strings.Replace(base("{address: 10.1.0.0, asn: 65100}"), "10.0.1.0/24", "10.0.1.5/24", 1), "podCIDRs[0]: 10.0.1.5/24 has host bits set"},
		{"overlapping cidrs", strings.Replace(base("{address: 10.1.0.0, asn: 65100}"), "[10.0.1.0/24]", "[10.0.0.0/16, 10.0.1.0/24]", 1), "podCIDRs[1]: 10.0.1.0/24 overlaps podCIDRs[0]"},
		{"no cidr", strings.Replace(base("{address: 10.1.0.0, asn: 65100}"), "[10.0.1.0/24]", "[]", 1), "podCIDRs: at least one"},
		{"default as pod cidr", strings.Replace(base("{address: 10.1.0.0, asn: 65100}"), "10.0.1.0/24", "0.0.0.0/0", 1), "podCIDRs[0]: 0.0.0.0/0 is a default route"},
		{"duplicate peer", "node: {name: n, routerID: 10.255.0.1}\npodCIDRs: [10.0.1.0/24]\nbgp:\n  asn: 65001\n  peers:\n    - {address: 10.1.0.0, asn: 65100}\n    - {address: 10.1.0.0, asn: 65200}\n", "bgp.peers[1].address: duplicate peer 10.1.0.0"},
		{"bad peer address", base("{address: tor1, asn: 65100}"), "bgp.peers[0].address"},
		{"missing password file", base("{address: 10.1.0.0, asn: 65100, passwordFile: " + filepath.Join(dir, "nope") + "}"), "bgp.peers[0].passwordFile: read password file"},
		{"empty password file", base("{address: 10.1.0.0, asn: 65100, passwordFile: " + empty + "}"), "bgp.peers[0].passwordFile: password file"},
		{"gtsm and multihop", base("{address: 10.1.0.0, asn: 65100, ttlMin: 255, ebgpMultihopTTL: 2}"), "bgp.peers[0].ttlMin"},
		{"local address family", base("{address: 10.1.0.0, asn: 65100, localAddress: 'fd00::1'}"), "bgp.peers[0].localAddress"},
		{"api not loopback", base("{address: 10.1.0.0, asn: 65100}") + "  api: {address: '0.0.0.0:50051'}\n", "bgp.api.address: 0.0.0.0 is not a loopback"},
		{"api relative unix", base("{address: 10.1.0.0, asn: 65100}") + "  api: {address: 'unix://x.sock'}\n", "bgp.api.address: unix socket path must be absolute"},
		{"router id v6", strings.Replace(base("{address: 10.1.0.0, asn: 65100}"), "10.255.0.1", "'fd00::1'", 1), "node.routerID"},
		{"no node name", strings.Replace(base("{address: 10.1.0.0, asn: 65100}"), "name: n,", "", 1), "node.name: required"},
		{"reserved protocol", base("{address: 10.1.0.0, asn: 65100}") + "routes: {protocol: 4}\n", "routes.protocol"},
		{"bad shutdown mode", base("{address: 10.1.0.0, asn: 65100}") + "shutdown: {mode: pause}\n", "shutdown.mode"},
		{"bad log format", base("{address: 10.1.0.0, asn: 65100}") + "log: {format: xml}\n", "log.format"},
		{"max prefix warn", base("{address: 10.1.0.0, asn: 65100, maxPrefix: {limit: 10, warningThresholdPercent: 150}}"), "bgp.peers[0].maxPrefix.warningThresholdPercent"},
		{"restart time", base("{address: 10.1.0.0, asn: 65100, gracefulRestart: {restartTime: 5000s}}"), "bgp.peers[0].gracefulRestart.restartTime"},
		{"not yaml", "node: [", "parse config"},
		{"metrics not loopback", base("{address: 10.1.0.0, asn: 65100}") + "metrics: {address: '0.0.0.0:9842'}\n", "metrics.address: 0.0.0.0 is not a loopback"},
		{"datapath no uplinks", base("{address: 10.1.0.0, asn: 65100}") + "datapath: {enabled: true}\n", "datapath.uplinks: required"},
		{"datapath bad uplink", base("{address: 10.1.0.0, asn: 65100}") + "datapath: {enabled: true, uplinks: [up1, 'a/b']}\n", "datapath.uplinks[1]: not a valid interface name"},
		{"datapath long uplink", base("{address: 10.1.0.0, asn: 65100}") + "datapath: {uplinks: [abcdefghijklmnop]}\n", "datapath.uplinks[0]"},
		{"datapath dup uplink", base("{address: 10.1.0.0, asn: 65100}") + "datapath: {enabled: true, uplinks: [up1, up1]}\n", "datapath.uplinks[1]: duplicate uplink"},
		{"datapath relative pin dir", base("{address: 10.1.0.0, asn: 65100}") + "datapath: {pinDir: bpf/podrouter}\n", "datapath.pinDir"},
		{"datapath ct size negative", base("{address: 10.1.0.0, asn: 65100}") + "datapath: {ctSizeTCP: -1}\n", "datapath.ctSizeTCP"},
		{"datapath ct size huge", base("{address: 10.1.0.0, asn: 65100}") + "datapath: {ctSizeOther: 99999999}\n", "datapath.ctSizeOther"},
		{"datapath ct size type", base("{address: 10.1.0.0, asn: 65100}") + "datapath: {ctSizeTCP: lots}\n", "datapath.ctSizeTCP"},
		{"datapath bad pass cidr", base("{address: 10.1.0.0, asn: 65100}") + "datapath: {passCIDRs: [10.96.0.0/12, 10.96.0.1/12]}\n", "datapath.passCIDRs[1]: 10.96.0.1/12 has host bits"},
		{"auto peers no asn", base("{address: 10.1.0.0, asn: 65100}") + "  autoPeers: {enabled: true}\n", "bgp.autoPeers.asn: ASN 0"},
		{"auto peers address", base("{address: 10.1.0.0, asn: 65100}") + "  autoPeers: {enabled: true, asn: 65100, address: 10.1.0.2}\n", "bgp.autoPeers.address: discovered"},
		{"auto peers timers", base("{address: 10.1.0.0, asn: 65100}") + "  autoPeers: {enabled: true, asn: 65100, holdTime: 9s, keepaliveInterval: 9s}\n", "bgp.autoPeers.keepaliveInterval"},
		{"auto peers interface", base("{address: 10.1.0.0, asn: 65100}") + "  autoPeers: {enabled: true, asn: 65100, interfaces: ['a b']}\n", "bgp.autoPeers.interfaces[0]"},
		{"auto peers unknown", base("{address: 10.1.0.0, asn: 65100}") + "  autoPeers: {enabled: true, asn: 65100, gateways: false}\n", `unknown field "bgp.autoPeers.gateways"`},
		{"drain mode", base("{address: 10.1.0.0, asn: 65100}") + "  drain: {mode: prepend}\n", "bgp.drain.mode: want"},
		{"drain prepend", base("{address: 10.1.0.0, asn: 65100}") + "  drain: {mode: deprefer, asPathPrepend: 50}\n", "bgp.drain.asPathPrepend: at most 10"},
		{"drain duration", base("{address: 10.1.0.0, asn: 65100}") + "  drain: {mode: deprefer, withdrawAfter: soon}\n", "bgp.drain.withdrawAfter"},
		{"bfd multiplier negative", base("{address: 10.1.0.0, asn: 65100, bfd: {enabled: true, multiplier: -1}}"), "bgp.peers[0].bfd.multiplier: want 1-255, got -1"},
		{"bfd multiplier big", base("{address: 10.1.0.0, asn: 65100, bfd: {enabled: true, multiplier: 256}}"), "bgp.peers[0].bfd.multiplier: want 1-255, got 256"},
		{"bfd multiplier when disabled", base("{address: 10.1.0.0, asn: 65100, bfd: {multiplier: 300}}"), "bgp.peers[0].bfd.multiplier"},
		{"bfd min tx small", base("{address: 10.1.0.0, asn: 65100, bfd: {enabled: true, minTx: 5ms}}"), "bgp.peers[0].bfd.minTx: want 10ms-1m0s, got 5ms"},
		{"bfd min rx big", base("{address: 10.1.0.0, asn: 65100, bfd: {enabled: true, minRx: 2m}}"), "bgp.peers[0].bfd.minRx: want 10ms-1m0s"},
		{"bfd min rx fraction", base("{address: 10.1.0.0, asn: 65100, bfd: {enabled: true, minRx: 10500us}}"), "bgp.peers[0].bfd.minRx: want whole milliseconds"},
		{"bfd duration", base("{address: 10.1.0.0, asn: 65100, bfd: {enabled: true, minTx: fast}}"), "bgp.peers[0].bfd.minTx: line 6"},
		{"bfd unknown", base("{address: 10.1.0.0, asn: 65100, bfd: {enabled: true, interval: 300ms}}"), `unknown field "bgp.peers[0].bfd.interval"`},
		{"bfd multihop", base("{address: 10.1.0.0, asn: 65100, ebgpMultihopTTL: 2, bfd: {enabled: true}}"), "bgp.peers[0].bfd.enabled: BFD is single-hop"},
		{"auto peers bfd", base("{address: 10.1.0.0, asn: 65100}") + "  autoPeers: {enabled: true, asn: 65100, bfd: {enabled: true, multiplier: 0, minTx: 1ms}}\n", "bgp.autoPeers.bfd.minTx"},
		{"datapath unknown field", base("{address: 10.1.0.0, asn: 65100}") + "datapath: {uplink: [up1]}\n", `unknown field "datapath.uplink"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.yaml)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	// A password file that exists is fine.
	if _, err := Parse([]byte(base("{address: 10.1.0.0, asn: 65100, passwordFile: " + pw + "}"))); err != nil {
		t.Fatal(err)
	}
	if got, _ := ReadPassword(pw); got != "s3cret" {
		t.Errorf("password %q", got)
	}
}
