package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/podrouter/podrouter/agent"
	"github.com/podrouter/podrouter/bgp"
	"github.com/podrouter/podrouter/config"
	"github.com/podrouter/podrouter/health"
	"github.com/podrouter/podrouter/metrics"
	"github.com/podrouter/podrouter/routes"
)

// noRoutes is an agent.RouteInstaller that installs nothing, so the test
// never touches the host's routing table.
type noRoutes struct{}

func (noRoutes) SetDefault(context.Context, routes.Family, []netip.Addr) (routes.Result, error) {
	return routes.Result{}, nil
}

func (noRoutes) Current(context.Context, routes.Family) ([]routes.NextHop, error) { return nil, nil }
func (noRoutes) SetBlackholes(context.Context, []netip.Prefix) (bool, error)      { return false, nil }

type nopKicker struct{}

func (nopKicker) Kick() {}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	var resp *http.Response
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err = http.Get(url); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// newParts builds the real speaker (not started, no peers), an agent
// driving it with noRoutes, and a route installer for its counters.
func newParts(t *testing.T, log *slog.Logger) (*bgp.Speaker, *agent.Agent, *routes.Installer) {
	t.Helper()
	sp, err := bgp.New(bgp.Config{RouterID: netip.MustParseAddr("192.0.2.1"), ASN: 65001, ListenPort: -1}, log)
	if err != nil {
		t.Fatal(err)
	}
	ag, err := agent.New(agent.Config{Resync: time.Hour}, log, sp, noRoutes{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ri, err := routes.New(routes.Config{}, log)
	if err != nil {
		t.Fatal(err)
	}
	return sp, ag, ri
}

// startObservability against the real speaker (no peers: "no peers" mode),
// agent, installer and a datapath that cannot load (its pin dir is not on
// bpffs): ready, with the fallback declared in /readyz and /metrics.
func TestStartObservability(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	sp, ag, ri := newParts(t, log)
	if err := sp.Start(ctx, nopKicker{}); err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	addr := freeAddr(t)
	cfg := &config.Config{Metrics: config.Metrics{Address: netip.MustParseAddrPort(addr)},
		Datapath: config.Datapath{Enabled: true, Uplinks: []string{"lo"}, PinDir: t.TempDir() + "/pins", CTSizeTCP: 1024, CTSizeOther: 1024}}
	fp, err := newFastPath(cfg.Datapath, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	fpDone := make(chan error, 1)
	go func() { fpDone <- fp.run(ctx) }() // not on bpffs: unavailable, and it says so
	defer func() { cancel(); <-fpDone }()
	for fp.health().State != health.DatapathUnavailable {
		time.Sleep(10 * time.Millisecond)
	}
	d := &daemon{cfg: cfg, speaker: sp, agent: ag, fastPath: fp}
	run, err := startObservability(cfg, "v-test", log, d, ri, fp.dp)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()

	if code, body := httpGet(t, "http://"+addr+"/readyz"); code != http.StatusServiceUnavailable ||
		!strings.Contains(body, "FAIL config: no reconcile completed yet") {
		t.Errorf("/readyz before the first reconcile: %d\n%s", code, body)
	}
	if st := ag.ReconcileOnce(ctx); st.Err != "" {
		t.Fatalf("reconcile: %s", st.Err)
	}
	code, body := httpGet(t, "http://"+addr+"/readyz")
	if code != http.StatusOK {
		t.Errorf("/readyz after a reconcile: %d\n%s", code, body)
	}
	for _, want := range []string{"ok bgp: no peers configured", "ok datapath: fallback to the kernel path: ebpf fast path unavailable"} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz lacks %q:\n%s", want, body)
		}
	}
	code, body = httpGet(t, "http://"+addr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`podrouter_build_info{goversion="go`,
		`podrouter_agent_reconciles_total 1`,
		`podrouter_metrics_source_up{source="bgp"} 1`,
		`podrouter_datapath_fallback{reason="unavailable"} 1`,
		`podrouter_routes_default_next_hops_installed{family="ipv4"} 0`,
		`podrouter_routes_installs_total 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

func TestStartObservabilityAddress(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	sp, ag, ri := newParts(t, log)
	cfg := &config.Config{Metrics: config.Metrics{Address: netip.MustParseAddrPort("0.0.0.0:9842")}}
	fp, err := newFastPath(cfg.Datapath, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{cfg: cfg, speaker: sp, agent: ag, fastPath: fp}
	if _, err := startObservability(cfg, "v-test", log, d, ri, nil); !errors.Is(err, metrics.ErrNonLoopback) {
		t.Errorf("0.0.0.0: %v, want ErrNonLoopback", err)
	}
	cfg.Metrics.Address = netip.AddrPort{}
	run, err := startObservability(cfg, "v-test", log, d, ri, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := run(t.Context()); err != nil {
		t.Errorf("disabled listener: %v", err)
	}
}
