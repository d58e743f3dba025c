package metrics

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const promtool = "/usr/bin/promtool"

// requireBinary fails when path is missing and the test runs as root (CI
// installs Debian's prometheus package); it skips elsewhere.
func requireBinary(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Geteuid() == 0 {
			t.Fatalf("%s missing (install Debian's prometheus package): %v", path, err)
		}
		t.Skipf("%s missing; CI (root) runs this test", path)
	}
}

// scrape serves the full handler on loopback and returns one /metrics body.
func scrape(t *testing.T) []byte {
	t.Helper()
	h, rt, dp := fixture(t)
	s := newTestServer(t, Sources{Health: h, Routes: rt, Datapath: dp})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d\n%s", resp.StatusCode, body)
	}
	return body
}

func TestPromtoolCheckMetrics(t *testing.T) {
	requireBinary(t, promtool)
	body := scrape(t)
	for _, want := range []string{
		`podrouter_build_info{goversion="go`,
		`podrouter_bgp_session_state{afi="ipv4",peer="192.0.2.1",peer_asn="65001",state="established"} 1`,
		`podrouter_bgp_bfd_up{afi="ipv4",peer="192.0.2.1",peer_asn="65001"} 1`,
		`podrouter_datapath_map_pressure_ratio{map="ct_tcp"} 0.5`,
		"go_goroutines ", "process_resident_memory_bytes ",
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

const (
	alertsFile     = "../deploy/prometheus/podrouter-alerts.yaml"
	alertsTestFile = "../deploy/prometheus/podrouter-alerts_test.yaml"
	dashboardFile  = "../deploy/grafana/podrouter.json"
)

func TestAlertRules(t *testing.T) {
	requireBinary(t, promtool)
	for _, args := range [][]string{
		{"check", "rules", alertsFile},
		{"test", "rules", alertsTestFile},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// The alert the brief insists on is tested to fire.
	b, err := os.ReadFile(alertsTestFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("alertname: PodrouterBGPSessionDown\n        exp_alerts:\n          - exp_labels:")) {
		t.Error("no test makes PodrouterBGPSessionDown fire")
	}
}

var metricName = regexp.MustCompile(`\bpodrouter_[a-z0-9_]+`)

// Every podrouter_* name the dashboard and the alerts use is one this
// package exposes: a rename cannot silently blank a panel or an alert.
func TestDeployUsesExposedMetrics(t *testing.T) {
	exposed := map[string]bool{}
	for line := range strings.SplitSeq(string(scrape(t)), "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			exposed[strings.Fields(name)[0]] = true
		}
	}
	var exprs []string
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	walkJSON(dash, func(k string, v any) {
		if s, ok := v.(string); ok && (k == "expr" || k == "definition") {
			exprs = append(exprs, s)
		}
	})
	if len(exprs) < 10 {
		t.Errorf("dashboard has %d queries; parsing is broken", len(exprs))
	}
	// The dashboard covers what the operator surface promises.
	for _, want := range []string{"podrouter_bgp_session_state", "podrouter_bgp_prefixes_received",
		"podrouter_bgp_default_next_hops_learned", "podrouter_routes_default_next_hops_installed",
		"podrouter_datapath_packets_total", "podrouter_datapath_map_pressure_ratio"} {
		if !slices.ContainsFunc(exprs, func(e string) bool { return strings.Contains(e, want) }) {
			t.Errorf("dashboard does not query %s", want)
		}
	}
	raw, err = os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
			alerts = append(alerts, r.Alert)
		}
	}
	for _, want := range []string{"PodrouterBGPSessionDown", "PodrouterNoDefaultRoute", "PodrouterMaxPrefixTripped",
		"PodrouterConntrackPressure", "PodrouterDatapathFallback", "PodrouterRouteDriftLoop"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("alert %s missing", want)
		}
	}
	for _, e := range exprs {
		for _, name := range metricName.FindAllString(e, -1) {
			if !exposed[name] {
				t.Errorf("%q uses %s, which podrouter does not expose", e, name)
			}
		}
	}
}

func walkJSON(v any, f func(key string, v any)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			f(k, x)
			walkJSON(x, f)
		}
	case []any:
		for _, x := range v {
			walkJSON(x, f)
		}
	}
}
