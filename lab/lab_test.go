//go:build linux

package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// requireLab skips only where the lab cannot run at all: not root, or no
// FRR. CI runs as root with FRR installed, so there these tests run.
func requireLab(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("lab tests need root (network namespaces, FRR)")
	}
	if _, err := os.Stat(filepath.Join(frrDaemonDir, "bgpd")); err != nil {
		t.Skipf("FRR not installed: %v", err)
	}
}

func randomName(t *testing.T) string {
	b := make([]byte, 2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "t" + hex.EncodeToString(b)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func TestLabBIRD(t *testing.T) {
	requireLab(t)
	exerciseLab(t, Spec{Name: randomName(t), ToRs: 2, Speaker: SpeakerBIRD})
}

// TestLabPodrouter runs the same checks with podrouter as the speaker:
// $PODROUTER_BIN, or a binary built from ./cmd/podrouter.
func TestLabPodrouter(t *testing.T) {
	requireLab(t)
	bin := os.Getenv("PODROUTER_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "podrouter")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if _, err := run(ctx, nil, "go", "build", "-o", bin, "github.com/podrouter/podrouter/cmd/podrouter"); err != nil {
			t.Fatalf("build podrouter: %v", err)
		}
	}
	exerciseLab(t, Spec{Name: randomName(t), ToRs: 2, Speaker: SpeakerPodrouter, PodrouterBin: bin})
}

// exerciseLab: Up, check, measure convergence, Up again, check, status,
// Down twice, assert nothing is left.
func exerciseLab(t *testing.T, spec Spec) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	log := testLogger(t)
	t.Cleanup(func() {
		if err := Teardown(context.Background(), spec, nil); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})

	l, err := Up(ctx, spec, log)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	checkLab(ctx, t, l)
	if t.Failed() {
		var b bytes.Buffer
		_ = l.Status(ctx, &b) // diagnostics only
		t.Logf("status:\n%s", b.String())
		t.FailNow()
	}

	runs, err := l.MeasureConvergence(ctx, 3)
	if err != nil {
		t.Fatalf("measure convergence: %v", err)
	}
	t.Logf("%s convergence (start -> 10.0.1.0/24 installed on %d ToRs): %v", spec.Speaker, l.Spec.ToRs, runs)
	checkToRs(ctx, t, l) // node 1 is back on both ToRs

	// Up on top of a running lab tears it down first and builds it again.
	l, err = Up(ctx, spec, log)
	if err != nil {
		t.Fatalf("second up: %v", err)
	}
	checkToRs(ctx, t, l)
	pingPods(ctx, t, l)

	loaded, err := Load(spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := loaded.Status(ctx, &b); err != nil {
		t.Errorf("status: %v\n%s", err, b.String())
	}
	for _, want := range []string{"show bgp summary", "10.0.2.0/24", "fd00:10:0:3::/64", "default"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}

	// Collect what must be gone, then tear down (twice: idempotent).
	pids := ownedProcs(nsPaths(t, spec.Name), l.StateDir(), []string{l.ToRNS(1), l.ToRNS(2)})
	if len(pids) != 2*l.Spec.ToRs+l.Spec.Nodes {
		t.Errorf("lab processes before down: %v, want zebra+bgpd per ToR and one speaker per node", pids)
	}
	if err := Down(ctx, spec.Name); err != nil {
		t.Fatalf("down: %v", err)
	}
	if err := Down(ctx, spec.Name); err != nil {
		t.Fatalf("second down: %v", err)
	}
	assertGone(t, l, pids)
}

func nsPaths(t *testing.T, name string) []string {
	nss, err := labNamespaces(name)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ns := range nss {
		out = append(out, filepath.Join(netnsDir, ns))
	}
	return out
}

func checkLab(ctx context.Context, t *testing.T, l *Lab) {
	t.Helper()
	checkToRs(ctx, t, l)
	// Every node: a default route of each family over every ToR, from the
	// speaker, and nothing else learned (downward default only).
	proto := "201" // podrouter's rtnetlink protocol (routes: {protocol: 201})
	if l.Spec.Speaker == SpeakerBIRD {
		proto = "bird"
	}
	for n := 1; n <= l.Spec.Nodes; n++ {
		for _, f := range []Family{IPv4, IPv6} {
			all, err := l.KernelRoutes(ctx, l.NodeNS(n), f, "proto", proto)
			if err != nil {
				t.Fatal(err)
			}
			// podrouter (and BIRD's static protocol, if it exports it) may
			// also hold a blackhole for the node's own pod CIDR.
			var rs []Route
			for _, r := range all {
				if r.Type != "blackhole" {
					rs = append(rs, r)
				}
			}
			if len(rs) != 1 || rs[0].Dst != "default" || len(rs[0].Gateways()) != l.Spec.ToRs {
				t.Errorf("%s %s proto %s routes = %+v, want one ECMP default over %d ToRs", NodeName(n), f, proto, rs, l.Spec.ToRs)
			}
		}
	}
	// The ToRs install the pod CIDRs in their kernels.
	for k := 1; k <= l.Spec.ToRs; k++ {
		rs, err := l.KernelRoutes(ctx, l.ToRNS(k), IPv4, "proto", "bgp")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rs {
			got = append(got, r.Dst)
		}
		if want := []string{"10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"}; !slices.Equal(got, want) {
			t.Errorf("tor%d kernel bgp routes = %v, want %v", k, got, want)
		}
	}
	// Sysctls an operator would check on the links.
	for ns, keys := range map[string][]string{
		l.ToRNS(1):  {"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1", "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.n1.send_redirects=0", "net.ipv6.conf.n1.accept_dad=0", "net.ipv4.conf.n1.rp_filter=0"},
		l.NodeNS(1): {"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1", "net.ipv6.conf.up1.accept_dad=0", "net.ipv6.conf.up1.disable_ipv6=0", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.up2.rp_filter=0"},
	} {
		for _, kv := range keys {
			k, want, _ := strings.Cut(kv, "=")
			got, err := l.Exec(ctx, ns, "sysctl", "-n", k)
			if err != nil || strings.TrimSpace(got) != want {
				t.Errorf("%s %s = %q (%v), want %s", ns, k, strings.TrimSpace(got), err, want)
			}
		}
	}
	pingPods(ctx, t, l)
}

// checkToRs: every session Established with one prefix received, and the
// RIB holds exactly the nodes' pod CIDRs.
func checkToRs(ctx context.Context, t *testing.T, l *Lab) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := l.WaitReady(wctx); err != nil {
		t.Fatalf("not ready: %v", err)
	}
	for k := 1; k <= l.Spec.ToRs; k++ {
		for _, f := range []Family{IPv4, IPv6} {
			ss, err := l.ToRSessions(ctx, k, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(ss) != l.Spec.Nodes {
				t.Errorf("tor%d %s: %d sessions, want %d: %+v", k, f, len(ss), l.Spec.Nodes, ss)
			}
			for i, s := range ss {
				_, n4 := LinkV4(k, i+1)
				_, n6 := LinkV6(k, i+1)
				want := n4
				if f == IPv6 {
					want = n6
				}
				if s.Peer != want || s.State != "Established" || s.PfxRcd != 1 {
					t.Errorf("tor%d %s session %d = %+v, want %s Established with 1 prefix", k, f, i, s, want)
				}
			}
			rib, err := l.ToRRoutes(ctx, k, f)
			if err != nil {
				t.Fatal(err)
			}
			if want := l.Spec.AllPodCIDRs(f); !slices.Equal(rib, want) {
				t.Errorf("tor%d %s RIB = %v, want exactly %v", k, f, rib, want)
			}
		}
	}
}

// pingPods pings across nodes, both families: n1p1 -> n2p2 and n3p1.
func pingPods(ctx context.Context, t *testing.T, l *Lab) {
	t.Helper()
	for _, f := range []Family{IPv4, IPv6} {
		for _, dst := range [][2]int{{2, 2}, {3, 1}} {
			ip, err := l.PodIP(ctx, dst[0], dst[1], f)
			if err != nil {
				t.Fatal(err)
			}
			if want := PodCIDRs(dst[0])[f]; !want.Contains(ip) {
				t.Errorf("pod %s %s address %s outside %s", l.PodNS(dst[0], dst[1]), f, ip, want)
			}
			if err := Ping(ctx, l.PodNS(1, 1), ip, 3); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
	}
}

func assertGone(t *testing.T, l *Lab, pids []int) {
	t.Helper()
	if nss, err := labNamespaces(l.Spec.Name); err != nil || len(nss) > 0 {
		t.Errorf("namespaces left after down: %v %v", nss, err)
	}
	for _, p := range pids {
		if alive(p) {
			t.Errorf("process %d left after down", p)
		}
	}
	paths := []string{l.StateDir()}
	for k := 1; k <= l.Spec.ToRs; k++ {
		paths = append(paths, filepath.Join(frrRunDir, l.ToRNS(k)), filepath.Join(frrEtcDir, l.ToRNS(k)))
	}
	for _, p := range paths {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after down (stat: %v)", p, err)
		}
	}
}

// A lab whose Up died halfway (here: namespaces and FRR only) is removed by
// Down, and the name can be used again.
func TestDownAfterPartialUp(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := Spec{Name: randomName(t), Nodes: 1, Speaker: SpeakerBIRD}.WithDefaults()
	t.Cleanup(func() { _ = Teardown(context.Background(), s, nil) }) // belt and braces
	l := &Lab{Spec: s, log: testLogger(t)}
	if err := os.MkdirAll(s.StateDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := l.buildTopology(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.startFRR(ctx, 1); err != nil {
		t.Fatal(err)
	}
	pids := ownedProcs(nsPaths(t, s.Name), s.StateDir(), []string{s.ToRNS(1)})
	if len(pids) != 2 {
		t.Fatalf("want zebra and bgpd running, got %v", pids)
	}
	// Simulate a crash that lost the namespace mount but not the daemons.
	if _, err := run(ctx, nil, "ip", "netns", "delete", s.ToRNS(1)); err != nil {
		t.Fatal(err)
	}
	if err := Down(ctx, s.Name); err != nil {
		t.Fatalf("down: %v", err)
	}
	assertGone(t, l, pids)
}
