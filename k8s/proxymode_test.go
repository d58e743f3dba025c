package k8s_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/podrouter/podrouter/k8s"
)

func TestProbeProxyMode(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		body      string
		want      k8s.ProxyMode
		err       string
		supported bool
	}{
		{"iptables", 200, "iptables", k8s.ProxyModeIPTables, "", true},
		{"nftables", 200, "nftables", k8s.ProxyModeNFTables, "", true},
		{"ipvs is unsupported", 200, "ipvs", k8s.ProxyModeIPVS, "", false},
		{"kernelspace is unsupported", 200, "kernelspace", k8s.ProxyModeKernelspace, "", false},
		{"trailing newline", 200, "nftables\n", k8s.ProxyModeNFTables, "", true},
		{"not found", 404, "404 page not found", "", "HTTP 404", false},
		{"empty", 200, "", "", "not a mode", false},
		{"two words", 200, "ip tables", "", "not a mode", false},
		{"too long", 200, strings.Repeat("x", 100), "", "not a mode", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/proxyMode" {
					http.NotFound(w, r)
					return
				}
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body)) //nolint:errcheck // test server
			}))
			defer srv.Close()
			got, err := k8s.ProbeProxyMode(context.Background(), srv.Client(), srv.URL+"/proxyMode")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
			if err := got.Supported(); (err == nil) != tc.supported || (err != nil && !errors.Is(err, k8s.ErrProxyModeUnsupported)) {
				t.Errorf("Supported() = %v, want supported %v", err, tc.supported)
			}
		})
	}
	// Nothing listening: an error, not a mode.
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	if m, err := k8s.ProbeProxyMode(context.Background(), nil, url+"/proxyMode"); err == nil {
		t.Errorf("no kube-proxy: got %q, want an error", m)
	}
}
