package config

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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
	if p.HoldTime != 9*time.Second || p.KeepaliveInterval != 3*time.Second || !*p.GracefulRestart.Enabled ||
		p.GracefulRestart.RestartTime != 120*time.Second || p.ConnectRetry != 5*time.Second {
		t.Errorf("peer defaults not applied: %+v", p)
	}
	if c.BGP.ListenPort != 179 || c.Routes.Protocol != 201 || c.Routes.Metric != 20 || c.Routes.Table != 254 ||
		c.Shutdown.Mode != ShutdownGracefulRestart || c.LocalAPI.Socket != DefaultSocket {
		t.Errorf("defaults not applied: %+v", c)
	}
	if c.BGP.ASN != 4200000001 {
		t.Errorf("4-byte ASN: got %d", c.BGP.ASN)
	}
	if ps := c.PodCIDRs; len(ps) != 2 || !ps[1].Addr().Is6() {
		t.Errorf("prefixes %v", ps)
	}
	if c.BGP.Drain.Mode != DrainWithdraw || c.BGP.AutoPeers.Enabled {
		t.Errorf("drain/autoPeers defaults: %+v %+v", c.BGP.Drain, c.BGP.AutoPeers)
	}
	// BFD defaults only when enabled; set values are kept.
	if b := c.BGP.Peers[0].BFD; b != (BFD{}) {
		t.Errorf("disabled BFD got defaults: %+v", b)
	}
	if b := c.BGP.Peers[1].BFD; !b.Enabled || b.MinTx != 300*time.Millisecond || b.MinRx != 50*time.Millisecond || b.Multiplier != 3 {
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
	if !*ap.DefaultGateways || strings.Join(ap.Interfaces, ",") != "up1,up2" || ap.HoldTime != 9*time.Second ||
		!*ap.GracefulRestart.Enabled || ap.TTLMin != 255 || ap.BFD != (BFD{true, 300 * time.Millisecond, 300 * time.Millisecond, 3}) {
		t.Errorf("autoPeers defaults not applied: %+v", ap)
	}
	d := c.BGP.Drain
	if d.ASPathPrepend != 3 || !*d.GracefulShutdownCommunity || d.WithdrawAfter != 30*time.Second || d.MED != 100 {
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
		{"kernel conntrack mode", base("{address: 10.1.0.0, asn: 65100}") + "datapath: {kernelConntrack: ipvs}\n", `datapath.kernelConntrack: want "auto", "nat" or "any", got "ipvs"`},
		{"kube-proxy url", base("{address: 10.1.0.0, asn: 65100}") + "kubernetes: {enabled: true, kubeProxyModeURL: 'ftp://x/proxyMode'}\n", "kubernetes.kubeProxyModeURL: want an http://host:port/path URL"},
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

// The shipped ConfigMap leaves node.name to the DaemonSet's
// --node-name=$(NODE_NAME): overrides come before validation.
func TestOverridesBeforeValidation(t *testing.T) {
	const file = `
kubernetes: {enabled: true}
bgp: {asn: 65001}
`
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, Overrides{}); err == nil || !strings.Contains(err.Error(), "node.name: required") {
		t.Fatalf("without --node-name: got %v, want node.name: required", err)
	}
	c, err := Load(path, Overrides{NodeName: "node1", LogLevel: "debug", ShutdownMode: ShutdownDrain})
	if err != nil {
		t.Fatal(err)
	}
	if c.Node.Name != "node1" || c.Log.Level != "debug" || c.Shutdown.Mode != ShutdownDrain || c.Log.Format != "text" {
		t.Errorf("overrides or defaults not applied: %+v %+v %+v", c.Node, c.Log, c.Shutdown)
	}
	// An override is validated like the file's value.
	if _, err := Load(path, Overrides{NodeName: "Node_1"}); err == nil || !strings.Contains(err.Error(), "node.name") {
		t.Errorf("bad --node-name accepted: %v", err)
	}
}

// TestHostileInput: inputs that could hang the daemon or eat the machine
// are refused at once with an error naming the field.
func TestHostileInput(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), MaxPasswordFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	node := func(name string) string {
		return "node: {name: " + name + ", routerID: 10.255.0.1}\npodCIDRs: [10.0.1.0/24]\nbgp: {asn: 65001}\n"
	}
	peer := func(p string) string {
		return "node: {name: n, routerID: 10.255.0.1}\npodCIDRs: [10.0.1.0/24]\nbgp:\n  asn: 65001\n  peers:\n    - " + p + "\n"
	}
	var cidrs strings.Builder
	cidrs.WriteString("node: {name: n, routerID: 10.255.0.1}\nbgp: {asn: 65001}\npodCIDRs:\n")
	for i := range 60000 {
		fmt.Fprintf(&cidrs, "- 10.%d.%d.0/24\n", i/256, i%256)
	}
	laughs := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	for i := 'b'; i <= 'j'; i++ {
		laughs += fmt.Sprintf("%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	bomb := strings.Replace(node("n"), "podCIDRs: [10.0.1.0/24]", "podCIDRs: [10.0.1.0/24]\nbogus:\n"+indent(laughs), 1)
	aliasPeers := "node: {name: n, routerID: 10.255.0.1}\npodCIDRs: [10.0.1.0/24]\nbgp:\n  asn: 65001\n  x: &p {address: 10.1.0.0, asn: 65100, holdTime: 9s, ttlMin: 255, bfd: {enabled: true, minTx: 1s}, maxPrefix: {limit: 5}}\n  peers: [" + strings.Repeat("*p, ", 40000) + "*p]\n"
	bombListed := node("n") + "datapath:\n  uplinks: &u [eth0, eth0, eth0, eth0, eth0, eth0, eth0, eth0, eth0, eth0]\n"
	cases := []struct{ name, yaml, want string }{
		{"huge node name", node(strings.Repeat("n", 900_000)), "node.name: 900000 characters"},
		{"node name not a DNS name", node("'Node_1'"), `node.name: "Node_1" is not a DNS subdomain`},
		{"node name of 254", node(strings.Repeat("a", 254)), "node.name: 254 characters"},
		{"yaml bomb in an unknown field", bomb, `unknown field "bogus"`},
		{"aliases multiplying peers", aliasPeers, "expands to more than 200000 YAML nodes"},
		{"aliases in a known field", strings.Replace(bombListed, "[eth0, eth0", "[*u, eth0", 1), "datapath.uplinks"},
		{"duplicate key", node("n") + "log: {level: info, level: debug}\n", `mapping key "level" already defined`},
		{"duplicate section", node("n") + "log: {level: info}\nlog: {level: debug}\n", `mapping key "log" already defined`},
		{"trailing document", node("n") + "---\nnode: {name: other}\n", "second YAML document"},
		{"list for a string", "node: {name: [a, b], routerID: 10.255.0.1}\npodCIDRs: [10.0.1.0/24]\nbgp: {asn: 65001}\n", "node.name: line 1: want a scalar, got a list"},
		{"map for a list", node("n") + "datapath: {uplinks: {eth0: true}}\n", "datapath.uplinks: line 4: want a list, got a mapping"},
		{"list for a section", node("n") + "routes: [1, 2]\n", "routes: line 4: want a mapping, got a list"},
		{"string for a number", node("n") + "routes: {metric: high}\n", "routes.metric: line"},
		{"negative duration", node("n") + "routes: {resyncInterval: -1s}\n", `routes.resyncInterval: line`},
		{"zone on a global peer", peer("{address: '2001:db8::1%eth0', asn: 65100}"), "bgp.peers[0].address: 2001:db8::1%eth0: a zone (%eth0) is for link-local addresses only"},
		{"link-local peer", peer("{address: 'fe80::1%eth0', asn: 65100}"), "bgp.peers[0].address: want a global address"},
		{"zone on a global local address", peer("{address: '2001:db8::1', asn: 65100, localAddress: '2001:db8::2%eth0'}"), "bgp.peers[0].localAddress: 2001:db8::2%eth0: a zone"},
		{"zone on a listen address", "node: {name: n, routerID: 10.255.0.1}\npodCIDRs: [10.0.1.0/24]\nbgp:\n  asn: 65001\n  listenAddresses: ['2001:db8::2%eth0']\n", "bgp.listenAddresses[0]: 2001:db8::2%eth0: a zone"},
		{"peer is the node itself", peer("{address: 10.255.0.1, asn: 65100}"), "bgp.peers[0].address: 10.255.0.1 is this node's own address (node.routerID)"},
		{"peer on a listen address", "node: {name: n, routerID: 10.255.0.1}\npodCIDRs: [10.0.1.0/24]\nbgp:\n  asn: 65001\n  listenAddresses: [10.1.0.1]\n  peers: [{address: 10.1.0.1, asn: 65100}]\n", "bgp.peers[0].address: 10.1.0.1 is this node's own address (bgp.listenAddresses[0])"},
		{"peer on loopback", peer("{address: 127.0.0.1, asn: 65100}"), "bgp.peers[0].address: 127.0.0.1 is not a neighbour's unicast address"},
		{"peer local address is the peer", peer("{address: 10.1.0.0, asn: 65100, localAddress: 10.1.0.0}"), "bgp.peers[0].localAddress: 10.1.0.0 is the peer's own address"},
		{"60000 pod cidrs", cidrs.String(), "podCIDRs: at most 64 pod CIDRs, got 60000"},
		{"password file is a device", peer("{address: 10.1.0.0, asn: 65100, passwordFile: /dev/zero}"), "bgp.peers[0].passwordFile: read password file: /dev/zero is not a regular file (a character device)"},
		{"password file is a fifo", peer("{address: 10.1.0.0, asn: 65100, passwordFile: " + fifo + "}"), "bgp.peers[0].passwordFile: read password file: " + fifo + " is not a regular file (a FIFO)"},
		{"password file is a directory", peer("{address: 10.1.0.0, asn: 65100, passwordFile: " + dir + "}"), "is not a regular file (a directory)"},
		{"password file too big", peer("{address: 10.1.0.0, asn: 65100, passwordFile: " + big + "}"), "bgp.peers[0].passwordFile: read password file: " + big + " is 4097 bytes, at most 4096"},
		{"socket path too long", node("n") + "localAPI: {socket: /" + strings.Repeat("s", 120) + "}\n", "localAPI.socket: 121 bytes"},
		{"bad metrics address", node("n") + "metrics: {address: 'localhost:9842'}\n", `metrics.address: want ip:port, got "localhost:9842"`},
		{"file too large", node("n") + "#" + strings.Repeat("x", MaxFileSize), "at most 1048576"},
		{"unknown field listed once", node("n") + "bgp: {asn: 65001, peer: []}\n", `unknown field "bgp.peer" (line 4)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %.300q does not mention %q", err, tc.want)
			}
			if len(err.Error()) > 16<<10 {
				t.Errorf("error is %d bytes: a huge input must not make a huge error", len(err.Error()))
			}
		})
	}
	// The config file itself: only a regular file, bounded.
	for _, tc := range []struct{ path, want string }{
		{"/dev/zero", "read config: /dev/zero is not a regular file (a character device)"},
		{fifo, "read config: " + fifo + " is not a regular file (a FIFO)"},
		{big + "-nope", "read config: open"},
	} {
		if _, err := Load(tc.path, Overrides{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%s): got %v, want %q", tc.path, err, tc.want)
		}
	}
	huge := filepath.Join(dir, "huge.yaml")
	if err := os.WriteFile(huge, bytes.Repeat([]byte("#\n"), MaxFileSize), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(huge, Overrides{}); err == nil || !strings.Contains(err.Error(), "at most 1048576") {
		t.Errorf("Load of a 2 MiB file: %v", err)
	}
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n  ") + "\n"
}

// TestPodCIDROverlapSweep: the sort-and-sweep overlap check finds exactly
// the overlaps the pairwise check finds.
func TestPodCIDROverlapSweep(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var ps []netip.Prefix
		for range 1 + r.IntN(8) {
			var p netip.Prefix
			if r.IntN(3) == 0 {
				a := netip.AddrFrom16([16]byte{0xfd, 0, byte(r.IntN(4)), byte(r.IntN(4))})
				p = netip.PrefixFrom(a, 16+r.IntN(24)).Masked()
			} else {
				a := netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(4)), 0})
				p = netip.PrefixFrom(a, 8+r.IntN(17)).Masked()
			}
			ps = append(ps, p)
		}
		want := map[int]bool{}
		for i := range ps {
			for j := range i {
				if ps[i].Overlaps(ps[j]) {
					want[i] = true
				}
			}
		}
		err := validatePodCIDRs(ps)
		for i := range ps {
			got := err != nil && strings.Contains(err.Error(), fmt.Sprintf("podCIDRs[%d]: %s overlaps", i, ps[i]))
			// The sweep names each overlapping later entry once; an entry
			// overlapping only earlier ones is found either way.
			if want[i] && !got && !overlapsLater(ps, i) {
				t.Fatalf("%v: podCIDRs[%d] overlap not reported: %v", ps, i, err)
			}
		}
		if (len(want) > 0) != (err != nil) {
			t.Fatalf("%v: overlaps %v, error %v", ps, want, err)
		}
	}
}

func overlapsLater(ps []netip.Prefix, i int) bool {
	for j := i + 1; j < len(ps); j++ {
		if ps[i].Overlaps(ps[j]) {
			return true
		}
	}
	return false
}
