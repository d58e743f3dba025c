package health

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var a1, a2 = netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")

func peers(states ...SessionState) []Peer {
	out := make([]Peer, len(states))
	for i, s := range states {
		out[i] = Peer{Address: []netip.Addr{a1, a2}[i], State: s}
	}
	return out
}

func TestCondition(t *testing.T) {
	reconciled := Reconcile{Count: 1}
	one := Default{Installed: []netip.Addr{a1}}
	two := Default{Installed: []netip.Addr{a1, a2}}
	for _, tc := range []struct {
		s      Snapshot
		ready  bool
		reason string
		msg    string
	}{
		{Snapshot{}, false, ReasonNotReconciled, "BGP sessions 0/0 established; no default route installed; datapath disabled"},
		{Snapshot{Reconcile: reconciled, Peers: peers(SessionActive, SessionIdle)}, false, ReasonNoSessions, "BGP sessions 0/2 established"},
		{Snapshot{Reconcile: reconciled, Peers: peers(SessionEstablished)}, false, ReasonNoDefault, "no default route installed"},
		{Snapshot{Reconcile: reconciled, Peers: peers(SessionEstablished, SessionActive), DefaultV4: one, Datapath: Datapath{State: DatapathActive}},
			true, ReasonReady, "BGP sessions 1/2 established; default route via 1 IPv4 and 0 IPv6 next hops; datapath active"},
		{Snapshot{Reconcile: reconciled, Peers: peers(SessionEstablished), DefaultV6: Default{Installed: two.Installed, Foreign: true},
			Datapath: Datapath{State: DatapathUnavailable, Reason: "no bpffs"}},
			true, ReasonDatapathFallback, "a default route podrouter did not install is present; datapath unavailable (kernel path fallback: no bpffs)"},
	} {
		c := tc.s.Condition()
		if c.Ready != tc.ready || c.Reason != tc.reason || !strings.Contains(c.Message, tc.msg) {
			t.Errorf("Condition(%+v) = %+v; want %v %s containing %q", tc.s, c, tc.ready, tc.reason, tc.msg)
		}
	}
}

func TestEvents(t *testing.T) {
	trip := func(ps []Peer) []Peer { ps[1].MaxPrefixTrips = 1; return ps }
	foreign := Default{Foreign: true}
	steps := []struct {
		s    Snapshot
		want []string // reasons
	}{
		{Snapshot{Peers: peers(SessionActive, SessionActive), Datapath: Datapath{State: DatapathStarting}}, nil},
		{Snapshot{Peers: peers(SessionEstablished, SessionActive), Datapath: Datapath{State: DatapathActive}}, []string{EventSessionUp}},
		{Snapshot{Peers: peers(SessionEstablished, SessionActive), Datapath: Datapath{State: DatapathActive}}, nil},
		{Snapshot{Peers: trip(peers(SessionActive, SessionActive)), Datapath: Datapath{State: DatapathActive}, DefaultV4: foreign},
			[]string{EventSessionDown, EventMaxPrefix, EventForeignDefault}},
		{Snapshot{Peers: trip(peers(SessionActive, SessionActive)), Datapath: Datapath{State: DatapathUnavailable}, DefaultV6: foreign}, []string{EventFallback}},
		{Snapshot{Peers: trip(peers(SessionActive, SessionActive)), Datapath: Datapath{State: DatapathActive}}, []string{EventDatapathActive}},
		{Snapshot{Peers: peers(SessionActive), Datapath: Datapath{State: DatapathActive}}, nil},
		{Snapshot{Peers: peers(SessionEstablished), Datapath: Datapath{State: DatapathActive}}, []string{EventSessionUp}},
		{Snapshot{Datapath: Datapath{State: DatapathActive}}, []string{EventSessionDown}}, // removed while up
	}
	var prev *Snapshot
	for i, s := range steps {
		var got []string
		for _, e := range Events(prev, s.s) {
			got = append(got, e.Reason)
		}
		if !reflect.DeepEqual(got, s.want) {
			t.Errorf("step %d: events %v, want %v", i, got, s.want)
		}
		cur := s.s
		prev = &cur
	}
	// First look: sessions already up and a fallback are reported.
	var got []string
	for _, e := range Events(nil, Snapshot{Peers: peers(SessionEstablished), Datapath: Datapath{State: DatapathUnavailable}}) {
		got = append(got, e.Reason)
	}
	if !reflect.DeepEqual(got, []string{EventSessionUp, EventFallback}) {
		t.Errorf("first look: %v", got)
	}
}

func TestReady(t *testing.T) {
	v4, v6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	applied := Reconcile{Count: 3, Errors: 1, Error: "ipv4 default route: boom"}
	up := []Peer{{Address: v4, State: SessionEstablished}, {Address: v6, State: SessionActive}}
	down := []Peer{{Address: v4, State: SessionActive}, {Address: v6, State: SessionIdle}}
	active := Datapath{State: DatapathActive}
	for _, tc := range []struct {
		name  string
		s     Snapshot
		ready bool
		want  []string
	}{
		{"not reconciled", Snapshot{Peers: up, Datapath: active}, false,
			[]string{"FAIL config: no reconcile completed yet", "ok bgp: 1 of 2 sessions established", "ok datapath: loaded"}},
		{"every reconcile failed", Snapshot{Reconcile: Reconcile{Count: 2, Errors: 2, Error: "ipv4 default route: boom"}, Peers: up}, false,
			[]string{"FAIL config: every reconcile failed (2); last: ipv4 default route: boom"}},
		{"failed only on peer state", Snapshot{Reconcile: Reconcile{Count: 1, Errors: 1, Error: "read learned defaults: x", PeersOnly: true}, Peers: up}, true,
			[]string{"ok config: applied; waiting for peers"}},
		{"applied once, failing since", Snapshot{Reconcile: applied, Peers: up}, true,
			[]string{"ok config: 3 reconciles, 1 failed; last: ipv4 default route: boom", "ok datapath: disabled"}},
		{"no session established", Snapshot{Reconcile: applied, Peers: down, Datapath: active}, false,
			[]string{"FAIL bgp: 0 of 2 sessions established (192.0.2.1 active, 2001:db8::1 idle)"}},
		{"no peers configured", Snapshot{Reconcile: applied}, true, []string{"ok bgp: no peers configured"}},
		{"speaker not running", Snapshot{Reconcile: applied, PeersErr: "bgp speaker not running"}, false,
			[]string{"FAIL bgp: cannot list peers: bgp speaker not running"}},
		{"datapath starting", Snapshot{Reconcile: applied, Peers: up, Datapath: Datapath{State: DatapathStarting}}, false,
			[]string{"FAIL datapath: not loaded yet"}},
		{"datapath fallback declared", Snapshot{Reconcile: applied, Peers: up,
			Datapath: Datapath{State: DatapathUnavailable, Reason: "ebpf fast path unavailable: no bpf filesystem"}}, true,
			[]string{"ok datapath: fallback to the kernel path: ebpf fast path unavailable: no bpf filesystem"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ready, checks := tc.s.Ready()
			if ready != tc.ready {
				t.Errorf("ready %v, want %v: %+v", ready, tc.ready, checks)
			}
			var lines []string
			for _, c := range checks {
				mark := "ok"
				if !c.OK {
					mark = "FAIL"
				}
				lines = append(lines, mark+" "+c.Name+": "+c.Detail)
			}
			for _, w := range tc.want {
				found := false
				for _, l := range lines {
					found = found || strings.HasPrefix(l, w)
				}
				if !found {
					t.Errorf("no check starting %q: %q", w, lines)
				}
			}
		})
	}
}

func TestDatapathWarnings(t *testing.T) {
	d := Datapath{State: DatapathActive, Uplinks: []string{"up1"}, FromNetwork: []string{"up1"},
		Maps: []MapUsage{{Map: "ct_tcp", Entries: 89, Capacity: 100}, {Map: "endpoints", Entries: 100, Capacity: 100}}}
	if w := d.Warnings(); len(w) != 0 {
		t.Errorf("healthy fast path warns: %q", w)
	}
	d.Maps[0].Entries = 90
	d.FromNetwork = nil
	d.Error = "resolve next hops: no neighbour"
	if w := d.Warnings(); len(w) != 3 {
		t.Errorf("want warnings for ct_tcp 90%%, the missing uplink and the last error; got %q", w)
	}
	if w := (Datapath{State: DatapathDisabled}).Warnings(); w != nil {
		t.Errorf("disabled fast path warns: %q", w)
	}
}

// Every enum round-trips through its text, the form the local API and
// the metrics labels use.
func TestStateText(t *testing.T) {
	for _, s := range SessionStates {
		var back SessionState
		b, _ := s.MarshalText()
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Errorf("%v: %q -> %v %v", s, b, back, err)
		}
	}
	type all struct {
		A AdminState
		B BFDState
		G GRState
		D DatapathState
		R DrainState
	}
	in := all{AdminPfxCt, BFDAdminDown, GRPeerRestarting, DatapathUnavailable, DrainDepreferred}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"A":"pfx_ct","B":"admin-down","G":"peer-restarting","D":"unavailable","R":"depreferred"}` {
		t.Errorf("json: %s", b)
	}
	var out all
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Errorf("round trip: %+v %v", out, err)
	}
	if err := out.A.UnmarshalText([]byte("sideways")); err == nil {
		t.Error("unknown state accepted")
	}
}

func TestServicesWarningsAndEvents(t *testing.T) {
	ok := Services{Learned: true, Synced: true, Proxy: ProxySupported, ProxyMode: "iptables", KernelConntrack: "nat"}
	if w := ok.Warnings(DatapathActive); len(w) != 0 {
		t.Errorf("supported: warnings %q", w)
	}
	ipvs := Services{Learned: true, Synced: true, Proxy: ProxyUnsupported, ProxyMode: "ipvs", KernelConntrack: "any", KernelConntrackAuto: true}
	if w := ipvs.Warnings(DatapathActive); len(w) != 1 || !strings.Contains(w[0], "ipvs") || !strings.Contains(w[0], "any") {
		t.Errorf("ipvs, any: warnings %q", w)
	}
	forced := ipvs
	forced.KernelConntrack = "nat"
	if w := forced.Warnings(DatapathActive); len(w) != 1 || !strings.Contains(w[0], "set datapath.kernelConntrack") {
		t.Errorf("ipvs, nat forced: warnings %q", w)
	}
	if w := ipvs.Warnings(DatapathDisabled); len(w) != 0 {
		t.Errorf("fast path off: warnings %q", w)
	}
	if w := (Services{Learned: true}).Warnings(DatapathActive); len(w) != 1 {
		t.Errorf("not synced: warnings %q", w)
	}
	prev := Snapshot{Services: ok}
	cur := Snapshot{Services: ipvs}
	var reasons []string
	for _, e := range Events(&prev, cur) {
		reasons = append(reasons, e.Reason)
	}
	if !slices.Contains(reasons, EventProxyMode) {
		t.Errorf("events %v, want %s", reasons, EventProxyMode)
	}
	for _, e := range Events(&cur, cur) {
		if e.Reason == EventProxyMode {
			t.Errorf("repeated %s without a change", EventProxyMode)
		}
	}
}
