package daemon

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/podrouter/podrouter/config"
	"github.com/podrouter/podrouter/datapath"
	"github.com/podrouter/podrouter/health"
)

// The kube-proxy probe: its mode decides the proxy state in the snapshot
// (and, with kernelConntrack auto, the datapath's lookup mode: the switch
// itself is datapath's TestKernelConntrackSwitchLive).
func TestServicesProbe(t *testing.T) {
	var mode atomic.Value
	mode.Store("iptables")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/proxyMode" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(mode.Load().(string))) //nolint:errcheck // test server
	}))
	defer srv.Close()
	dp, err := datapath.New(datapath.Config{PinDir: t.TempDir(), Uplinks: []string{"lo"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{}
	cfg.Kubernetes.Enabled = true
	cfg.Kubernetes.KubeProxyModeURL = srv.URL + "/proxyMode"
	cfg.Datapath.KernelConntrack = config.KernelConntrackAuto
	s := newServices(cfg, dp, nil, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	for _, c := range []struct {
		mode string
		want health.ProxyState
	}{
		{"iptables", health.ProxySupported},
		{"ipvs", health.ProxyUnsupported},
		{"nftables", health.ProxySupported},
	} {
		mode.Store(c.mode)
		s.probe(ctx)
		if h := s.health(); h.Proxy != c.want || h.ProxyMode != c.mode || !h.KernelConntrackAuto {
			t.Errorf("kube-proxy %s: %+v, want %s", c.mode, h, c.want)
		}
	}
	srv.Close()
	s.probe(ctx)
	if h := s.health(); h.Proxy != health.ProxyAbsent || h.ProxyError == "" {
		t.Errorf("kube-proxy gone: %+v, want absent with the error", h)
	}
	// Not in Kubernetes mode, or the probe off: never asked.
	cfg.Kubernetes.KubeProxyModeURL = config.KubeProxyProbeOff
	if s := newServices(cfg, dp, nil, slog.New(slog.DiscardHandler)); s.probeURL != "" {
		t.Errorf("probe off: url %q", s.probeURL)
	}
}
