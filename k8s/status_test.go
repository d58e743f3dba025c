package k8s

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestCondition(t *testing.T) {
	a1, a2 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	for _, tc := range []struct {
		h      Health
		status corev1.ConditionStatus
		reason string
		msg    string
	}{
		{Health{}, corev1.ConditionFalse, ReasonNotReconciled, "BGP sessions 0/0 established; no default route installed; datapath disabled"},
		{Health{Reconciled: true, Peers: []PeerHealth{{Address: a1}, {Address: a2}}}, corev1.ConditionFalse, ReasonNoSessions, "BGP sessions 0/2 established"},
		{Health{Reconciled: true, Peers: []PeerHealth{{Address: a1, Established: true}}}, corev1.ConditionFalse, ReasonNoDefault, "no default route installed"},
		{Health{Reconciled: true, Peers: []PeerHealth{{Address: a1, Established: true}, {Address: a2}}, DefaultV4: 1, Datapath: DatapathActive},
			corev1.ConditionTrue, ReasonReady, "BGP sessions 1/2 established; default route via 1 IPv4 and 0 IPv6 next hops; datapath active"},
		{Health{Reconciled: true, Peers: []PeerHealth{{Address: a1, Established: true}}, DefaultV6: 2, Datapath: DatapathUnavailable, DatapathReason: "no bpffs", ForeignDefault: true},
			corev1.ConditionTrue, ReasonDatapathFallback, "a default route podrouter did not install is present; datapath unavailable (kernel path fallback: no bpffs)"},
	} {
		s, r, m := condition(tc.h)
		if s != tc.status || r != tc.reason || !strings.Contains(m, tc.msg) {
			t.Errorf("condition(%+v) = %s %s %q; want %s %s containing %q", tc.h, s, r, m, tc.status, tc.reason, tc.msg)
		}
	}
}

func TestHealthEvents(t *testing.T) {
	a1, a2 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	steps := []struct {
		h    Health
		want []string // reasons
	}{
		{Health{Peers: []PeerHealth{{Address: a1}, {Address: a2}}, Datapath: DatapathStarting}, nil},
		{Health{Peers: []PeerHealth{{Address: a1, Established: true}, {Address: a2}}, Datapath: DatapathActive}, []string{EventSessionUp}},
		{Health{Peers: []PeerHealth{{Address: a1, Established: true}, {Address: a2}}, Datapath: DatapathActive}, nil},
		{Health{Peers: []PeerHealth{{Address: a1}, {Address: a2, MaxPrefixTrips: 1}}, Datapath: DatapathActive, ForeignDefault: true},
			[]string{EventSessionDown, EventMaxPrefix, EventForeignDefault}},
		{Health{Peers: []PeerHealth{{Address: a1}, {Address: a2, MaxPrefixTrips: 1}}, Datapath: DatapathUnavailable, ForeignDefault: true}, []string{EventFallback}},
		{Health{Peers: []PeerHealth{{Address: a1}, {Address: a2, MaxPrefixTrips: 1}}, Datapath: DatapathActive}, []string{EventDatapathActive}},
	}
	var prev *Health
	for i, s := range steps {
		var got []string
		for _, e := range healthEvents(prev, s.h) {
			got = append(got, e.Reason)
		}
		if !reflect.DeepEqual(got, s.want) {
			t.Errorf("step %d: events %v, want %v", i, got, s.want)
		}
		h := s.h
		prev = &h
	}
	// First look: sessions already up and a fallback are reported.
	var got []string
	for _, e := range healthEvents(nil, Health{Peers: []PeerHealth{{Address: a1, Established: true}}, Datapath: DatapathUnavailable}) {
		got = append(got, e.Reason)
	}
	if !reflect.DeepEqual(got, []string{EventSessionUp, EventFallback}) {
		t.Errorf("first look: %v", got)
	}
}
