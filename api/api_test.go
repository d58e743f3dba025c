package api

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

func TestMonitorFilter(t *testing.T) {
	f, err := ParseMonitorFilter(url.Values{"type": {"drop"}, "from": {"10.0.1.2"}})
	if err != nil {
		t.Fatal(err)
	}
	if !f.Match(MonitorEvent{Src: netip.MustParseAddrPort("10.0.1.2:1")}) || f.Match(MonitorEvent{Src: netip.MustParseAddrPort("10.0.1.3:1")}) {
		t.Error("from filter")
	}
	if _, err := ParseMonitorFilter(url.Values{"type": {"bogus"}}); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("bad type accepted: %v", err)
	}
	if _, err := ParseMonitorFilter(url.Values{"to": {"nope"}}); err == nil {
		t.Error("bad address accepted")
	}
	back, err := ParseMonitorFilter(mustQuery(t, f.Query()))
	if err != nil || back.From != f.From || len(back.Types) != 1 || back.Types[0] != "drop" {
		t.Errorf("query round trip: %+v %v", back, err)
	}
}

func mustQuery(t *testing.T, q string) url.Values {
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
