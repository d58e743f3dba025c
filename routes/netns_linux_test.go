package routes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// The privileged tier: every test builds a fresh node namespace whose links
// up1..upN are veth pairs into a second namespace acting as the routers
// (dn1..dnN). Link k carries 10.k.0.0/24 and 2001:db8:k::/64; the node is .2
// (::2), the router .1 (::1).

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("privileged test: needs root to create network namespaces and veth links")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("running as root but iproute2's ip is missing: %v", err)
	}
}

type testNet struct {
	t      *testing.T
	node   string // netns name of the node under test
	router string // netns name of the routers' side
	links  int
	inst   *Installer
}

func newTestNet(t *testing.T, links int) *testNet {
	t.Helper()
	requireRoot(t)
	base := fmt.Sprintf("prt-%08x", rand.Uint32())
	tn := &testNet{t: t, node: base, router: base + "r", links: links}
	for _, ns := range []string{tn.node, tn.router} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("cleanup: ip netns del %s: %v: %s", ns, err, out)
			}
		})
	}
	tn.ip("link", "set", "lo", "up")
	tn.ipr("link", "set", "lo", "up")
	for k := 1; k <= links; k++ {
		up, dn := fmt.Sprintf("up%d", k), fmt.Sprintf("dn%d", k)
		tn.ip("link", "add", up, "type", "veth", "peer", "name", dn, "netns", tn.router)
		tn.ip("addr", "add", fmt.Sprintf("10.%d.0.2/24", k), "dev", up)
		tn.ip("-6", "addr", "add", fmt.Sprintf("2001:db8:%d::2/64", k), "dev", up, "nodad")
		tn.ipr("addr", "add", fmt.Sprintf("10.%d.0.1/24", k), "dev", dn)
		tn.ipr("-6", "addr", "add", fmt.Sprintf("2001:db8:%d::1/64", k), "dev", dn, "nodad")
		tn.ip("link", "set", up, "up")
		tn.ipr("link", "set", dn, "up")
	}
	for k := 1; k <= links; k++ {
		waitOperUp(t, tn.node, fmt.Sprintf("up%d", k))
	}
	inst, err := New(Config{NetNSPath: "/run/netns/" + tn.node}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inst.Close() }) // only releases sockets; the netns goes anyway
	tn.inst = inst
	return tn
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ip runs ip in the node namespace; ipr in the routers' namespace.
func (tn *testNet) ip(args ...string) string {
	tn.t.Helper()
	return run(tn.t, "ip", append([]string{"-n", tn.node}, args...)...)
}

func (tn *testNet) ipr(args ...string) string {
	tn.t.Helper()
	return run(tn.t, "ip", append([]string{"-n", tn.router}, args...)...)
}

// waitOperUp waits until link in namespace ns reports operstate UP: the
// kernel sets it from linkwatch, a little after the flags.
func waitOperUp(t *testing.T, ns, link string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		var ls []struct {
			Operstate string `json:"operstate"`
		}
		out := run(t, "ip", "-n", ns, "-j", "link", "show", "dev", link)
		if err := json.Unmarshal([]byte(out), &ls); err != nil {
			t.Fatalf("parse %q: %v", out, err)
		}
		if len(ls) == 1 && ls[0].Operstate == "UP" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s: operstate %v, want UP", link, ns, ls)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gw returns router k's address on link k.
func gw(fam Family, k int) netip.Addr {
	if fam == FamilyV4 {
		return netip.MustParseAddr(fmt.Sprintf("10.%d.0.1", k))
	}
	return netip.MustParseAddr(fmt.Sprintf("2001:db8:%d::1", k))
}

func gws(fam Family, ks ...int) []netip.Addr {
	var out []netip.Addr
	for _, k := range ks {
		out = append(out, gw(fam, k))
	}
	return out
}

// expand replaces G1..G9 in a wanted rendering with the family's gateways.
func expand(fam Family, s string) string {
	for k := 9; k >= 1; k-- {
		s = strings.ReplaceAll(s, fmt.Sprintf("G%d", k), gw(fam, k).String())
	}
	return s
}

func famFlag(fam Family) string {
	if fam == FamilyV4 {
		return "-4"
	}
	return "-6"
}

// jsonRoute is the part of `ip -j route show` output the tests look at.
type jsonRoute struct {
	Dst      string   `json:"dst"`
	Gateway  string   `json:"gateway"`
	Dev      string   `json:"dev"`
	Protocol string   `json:"protocol"`
	Metric   int      `json:"metric"`
	Flags    []string `json:"flags"`
	Nexthops []struct {
		Gateway string   `json:"gateway"`
		Dev     string   `json:"dev"`
		Flags   []string `json:"flags"`
	} `json:"nexthops"`
}

// render shows the node's default routes of fam in the main table as
// `ip route` reports them, one line each, sorted.
func (tn *testNet) render(fam Family) string {
	tn.t.Helper()
	out := tn.ip("-j", famFlag(fam), "route", "show", "default")
	var rs []jsonRoute
	if strings.TrimSpace(out) != "" {
		if err := json.Unmarshal([]byte(out), &rs); err != nil {
			tn.t.Fatalf("parse ip -j output %q: %v", out, err)
		}
	}
	var lines []string
	for _, r := range rs {
		var b strings.Builder
		proto := r.Protocol
		if proto == "" {
			proto = "boot" // ip leaves out its own default protocol
		}
		fmt.Fprintf(&b, "%s proto %s metric %d", r.Dst, proto, r.Metric)
		if r.Gateway != "" {
			fmt.Fprintf(&b, " via %s dev %s", r.Gateway, r.Dev)
		}
		for _, f := range r.Flags {
			fmt.Fprintf(&b, " %s", f)
		}
		for _, nh := range r.Nexthops {
			fmt.Fprintf(&b, " nexthop via %s dev %s", nh.Gateway, nh.Dev)
			for _, f := range nh.Flags {
				fmt.Fprintf(&b, " %s", f)
			}
		}
		lines = append(lines, b.String())
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// handle returns a netlink handle in namespace ns, closed at cleanup.
func (tn *testNet) handle(ns string) *netlink.Handle {
	tn.t.Helper()
	nsh, err := netns.GetFromName(ns)
	if err != nil {
		tn.t.Fatal(err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		tn.t.Fatal(err)
	}
	tn.t.Cleanup(h.Close)
	return h
}

// nlDefaults dumps the node's default routes of fam in the main table with
// netlink, a second view next to `ip`.
func (tn *testNet) nlDefaults(fam Family) []netlink.Route {
	tn.t.Helper()
	h := tn.handle(tn.node)
	var rs []netlink.Route
	var err error
	for attempt := 0; ; attempt++ {
		rs, err = h.RouteListFiltered(nlFamily(fam), &netlink.Route{Table: 254}, netlink.RT_FILTER_TABLE)
		if !errors.Is(err, netlink.ErrDumpInterrupted) || attempt > 5 {
			break
		}
	}
	if err != nil {
		tn.t.Fatal(err)
	}
	var out []netlink.Route
	for _, r := range rs {
		if isDefault(r, fam) {
			out = append(out, r)
		}
	}
	return out
}

func (tn *testNet) set(fam Family, in []netip.Addr) Result {
	tn.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := tn.inst.SetDefault(ctx, fam, in)
	if err != nil {
		tn.t.Fatalf("SetDefault(%v, %v): %v", fam, in, err)
	}
	return res
}

func (tn *testNet) wantRender(fam Family, want string) {
	tn.t.Helper()
	if got, want := tn.render(fam), expand(fam, want); got != want {
		tn.t.Fatalf("%v default routes:\ngot:\n%s\nwant:\n%s", fam, got, want)
	}
}

// kicker records kicks with their time.
type kicker struct{ c chan time.Time }

func newKicker() *kicker { return &kicker{c: make(chan time.Time, 1024)} }

func (k *kicker) Kick() {
	select {
	case k.c <- time.Now():
	default:
	}
}

func (k *kicker) drain() {
	for {
		select {
		case <-k.c:
		default:
			return
		}
	}
}

// wait returns the first kick after since, failing after timeout.
func (k *kicker) wait(t *testing.T, since time.Time, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case at := <-k.c:
			if !at.Before(since) {
				return at
			}
		case <-deadline:
			t.Fatalf("no kick within %v", timeout)
		}
	}
}

// startRun runs the Installer's watcher until the test ends and waits for
// its first kick (subscriptions established).
func (tn *testNet) startRun(k *kicker) {
	tn.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tn.inst.Run(ctx, k) }()
	tn.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tn.t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			tn.t.Errorf("Run did not return after cancel")
		}
	})
	k.wait(tn.t, time.Time{}, 5*time.Second)
}
