package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/podrouter/podrouter/health"
)

func newTestServer(t *testing.T, src Sources) *Server {
	t.Helper()
	s, err := New(Config{Address: "127.0.0.1:9842", Version: "v0.0.0-test", Timeout: time.Second},
		slog.New(slog.DiscardHandler), src)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestHealthz(t *testing.T) {
	h, rt, _ := fixture(t)
	h.set(func(s *health.Snapshot) { s.Reconcile = health.Reconcile{} }) // nothing reconciled yet: alive but not ready
	s := newTestServer(t, Sources{Health: h, Routes: rt})
	if code, body := get(t, s.Handler(), "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, _ := get(t, s.Handler(), "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before the first reconcile: %d, want 503", code)
	}
}

// TestReadyz: /readyz renders the snapshot's checks (health.Snapshot.Ready
// has the table of cases).
func TestReadyz(t *testing.T) {
	h, rt, _ := fixture(t)
	src := Sources{Health: h, Routes: rt}
	code, body := get(t, newTestServer(t, src).Handler(), "/readyz")
	if code != http.StatusOK || !strings.HasPrefix(body, "ready\nok config: 7 reconciles, 1 failed\nok bgp: 1 of 2 sessions established") {
		t.Errorf("/readyz: %d\n%s", code, body)
	}
	h.set(func(s *health.Snapshot) { s.PeersErr = "bgp speaker not running" })
	code, body = get(t, newTestServer(t, src).Handler(), "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "\nFAIL bgp: cannot list peers: bgp speaker not running\n") {
		t.Errorf("/readyz without peers: %d\n%s", code, body)
	}
}

func TestListenAddress(t *testing.T) {
	h, rt, _ := fixture(t)
	src := Sources{Health: h, Routes: rt}
	for _, tc := range []struct {
		addr  string
		allow bool
		err   error // nil: accepted; errAny: any error
	}{
		{"127.0.0.1:9842", false, nil},
		{"127.0.0.53:9842", false, nil},
		{"[::1]:9842", false, nil},
		{"0.0.0.0:9842", false, ErrNonLoopback},
		{"[::]:9842", false, ErrNonLoopback},
		{"192.0.2.10:9842", false, ErrNonLoopback},
		{"[::ffff:192.0.2.10]:9842", false, ErrNonLoopback},
		{"0.0.0.0:9842", true, nil},
		{"192.0.2.10:9842", true, nil},
		{"localhost:9842", false, errAny},
		{"127.0.0.1", false, errAny},
	} {
		_, err := New(Config{Address: tc.addr, AllowNonLoopback: tc.allow}, nil, src)
		switch {
		case tc.err == nil && err != nil:
			t.Errorf("%s (allow=%v): %v", tc.addr, tc.allow, err)
		case tc.err == errAny && err == nil, tc.err != nil && tc.err != errAny && !errors.Is(err, tc.err):
			t.Errorf("%s (allow=%v): err %v, want %v", tc.addr, tc.allow, err, tc.err)
		}
	}
	if _, err := New(Config{Address: "127.0.0.1:1"}, nil, Sources{Health: h}); err == nil {
		t.Error("New accepted missing sources")
	}
}

var errAny = errors.New("any error")

// Run serves on the configured loopback address until its context ends,
// then releases the port.
func TestRunLifecycle(t *testing.T) {
	h, rt, _ := fixture(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s, err := New(Config{Address: addr}, nil, Sources{Health: h, Routes: rt})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	var resp *http.Response
	for deadline := time.Now().Add(5 * time.Second); ; {
		if resp, err = http.Get("http://" + addr + "/healthz"); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body) // a short read shows as a body mismatch
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
		t.Errorf("/healthz: %d %q", resp.StatusCode, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("port still open after Run returned")
	}
	// A second server on a taken port fails instead of hanging.
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := s.Run(t.Context()); err == nil {
		t.Error("Run on a taken port: no error")
	}
}
