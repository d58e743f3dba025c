package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
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
	peers, ag, rt, _ := fixture(t)
	ag.set(AgentState{}) // nothing reconciled yet: alive but not ready
	s := newTestServer(t, Sources{Peers: peers, Agent: ag, Routes: rt})
	if code, body := get(t, s.Handler(), "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, _ := get(t, s.Handler(), "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before the first reconcile: %d, want 503", code)
	}
}

func TestReadyz(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.1")
	v6 := netip.MustParseAddr("2001:db8::1")
	applied := AgentState{Reconciles: 3, Errors: 1, LastError: "ipv4 default route: boom"}
	up := []Peer{{Address: v4, State: "established"}, {Address: v6, State: "active"}}
	down := []Peer{{Address: v4, State: "active"}, {Address: v6, State: "idle"}}
	loaded := &fakeDatapath{t: t, st: DatapathState{Mode: DatapathLoaded}}
	for _, tc := range []struct {
		name     string
		agent    AgentState
		peers    []Peer
		peersErr error
		dp       DatapathSource
		ready    bool
		want     []string // lines the body must hold
	}{
		{name: "not reconciled", agent: AgentState{}, peers: up, dp: loaded,
			want: []string{"not ready", "FAIL config: no reconcile completed yet", "ok bgp: 1 of 2 sessions established", "ok datapath: loaded"}},
		{name: "every reconcile failed", agent: AgentState{Reconciles: 2, Errors: 2, LastError: "ipv4 default route: boom"}, peers: up,
			want: []string{"FAIL config: every reconcile failed (2); last: ipv4 default route: boom"}},
		{name: "failed only on peer state", agent: AgentState{Reconciles: 1, Errors: 1, LastError: "read learned defaults: x", LastErrorPeerOnly: true}, peers: up,
			ready: true, want: []string{"ok config: applied; waiting for peers"}},
		{name: "applied once, failing since", agent: applied, peers: up, ready: true,
			want: []string{"ready", "ok config: 3 reconciles, 1 failed; last: ipv4 default route: boom", "ok datapath: disabled"}},
		{name: "no session established", agent: applied, peers: down, dp: loaded,
			want: []string{"FAIL bgp: 0 of 2 sessions established (192.0.2.1 active, 2001:db8::1 idle)"}},
		{name: "no peers configured", agent: applied, peers: nil, ready: true,
			want: []string{"ok bgp: no peers configured"}},
		{name: "speaker not running", agent: applied, peersErr: errors.New("bgp speaker not running"),
			want: []string{"FAIL bgp: cannot list peers: bgp speaker not running"}},
		{name: "datapath starting", agent: applied, peers: up,
			dp:   &fakeDatapath{t: t, st: DatapathState{Mode: DatapathStarting}},
			want: []string{"FAIL datapath: not loaded yet"}},
		{name: "datapath fallback declared", agent: applied, peers: up, ready: true,
			dp:   &fakeDatapath{t: t, st: DatapathState{Mode: DatapathFallback, Reason: "unavailable", Detail: "ebpf fast path unavailable: no bpf filesystem"}},
			want: []string{"ok datapath: fallback to the kernel path: ebpf fast path unavailable: no bpf filesystem"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := Sources{
				Peers:    &fakePeers{t: t, peers: tc.peers, err: tc.peersErr},
				Agent:    &fakeAgent{st: tc.agent},
				Routes:   &fakeRoutes{},
				Datapath: tc.dp,
			}
			code, body := get(t, newTestServer(t, src).Handler(), "/readyz")
			want := http.StatusServiceUnavailable
			if tc.ready {
				want = http.StatusOK
			}
			if code != want {
				t.Errorf("status %d, want %d; body:\n%s", code, want, body)
			}
			lines := strings.Split(body, "\n")
			for _, w := range tc.want {
				found := false
				for _, l := range lines {
					found = found || strings.HasPrefix(l, w)
				}
				if !found {
					t.Errorf("body has no line starting %q:\n%s", w, body)
				}
			}
		})
	}
}

func TestListenAddress(t *testing.T) {
	peers, ag, rt, _ := fixture(t)
	src := Sources{Peers: peers, Agent: ag, Routes: rt}
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
	if _, err := New(Config{Address: "127.0.0.1:1"}, nil, Sources{Peers: peers}); err == nil {
		t.Error("New accepted missing sources")
	}
}

var errAny = errors.New("any error")

// Run serves on the configured loopback address until its context ends,
// then releases the port.
func TestRunLifecycle(t *testing.T) {
	peers, ag, rt, _ := fixture(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s, err := New(Config{Address: addr}, nil, Sources{Peers: peers, Agent: ag, Routes: rt})
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
