package metrics

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/podrouter/podrouter/metrics/promtest"
)

// A real Prometheus scrapes the handler served on loopback, and its query
// API returns podrouter's series with the labels we set.
func TestPrometheusScrapes(t *testing.T) {
	requireBinary(t, promtest.DefaultBinary)
	h, rt, dp := fixture(t)
	s := newTestServer(t, Sources{Health: h, Routes: rt, Datapath: dp})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- ServeListener(ctx, ln, s.Handler(), nil) }()

	prom, err := promtest.Start(ctx, []string{ln.Addr().String()}, promtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := prom.Stop(); err != nil {
			t.Error(err)
		}
	}()
	res, err := prom.WaitFor(ctx, "podrouter_build_info")
	if err != nil {
		t.Fatalf("%v\nprometheus log:\n%s", err, prom.Log())
	}
	if len(res) != 1 {
		t.Fatalf("podrouter_build_info: %d series, want 1: %v", len(res), res)
	}
	l := res[0].Labels
	if res[0].Value != 1 || l["version"] != "v0.0.0-test" || l["goversion"] != runtime.Version() ||
		l["job"] != "podrouter" || l["instance"] != ln.Addr().String() {
		t.Errorf("podrouter_build_info = %v %v", res[0].Value, l)
	}
	up, err := prom.Query(ctx, `podrouter_bgp_session_state{state="established"} == 1`)
	if err != nil {
		t.Fatal(err)
	}
	if len(up) != 1 || up[0].Labels["peer"] != "192.0.2.1" {
		t.Errorf("established sessions: %v, want only 192.0.2.1", up)
	}
	// Prometheus's own view of the target: scraped without errors.
	health, err := prom.Query(ctx, `up{job="podrouter"}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(health) != 1 || health[0].Value != 1 {
		t.Errorf("up: %v", health)
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("serve: %v", err)
	}
}
