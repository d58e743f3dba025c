package resilience

import (
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

var fuzzExecs = regexp.MustCompile(`fuzz: elapsed: \S+, execs: (\d+)`)

// Test 7: fuzzing. Every fuzz target runs for 60 s (-long: 10 min) with
// `go test -fuzz`: config parsing (config), the Kubernetes Node
// translation (k8s), learned paths
// through GoBGP's decoder, podrouter's import policy and the default
// decision (bgp), both BPF programs with random frames (datapath). 0
// crashers; the corpora are committed under each package's testdata/fuzz
// (plus bgp/bgptest's malformed-message corpus as bgp seeds).
func TestFuzzing(t *testing.T) {
	requireLab(t) // root: the datapath target loads BPF
	fuzzTime := size(60*time.Second, 10*time.Minute)
	targets := []struct{ pkg, fn string }{
		{"../config", "FuzzParse"},
		{"../k8s", "FuzzTranslate"},
		{"../bgp", "FuzzLearnedPaths"},
		{"../datapath", "FuzzPrograms"},
	}
	crashers := 0
	var figs []string
	for _, tg := range targets {
		cmd := exec.Command("go", "test", "-run", "^$", "-fuzz", "^"+tg.fn+"$", "-fuzztime", fuzzTime.String(), tg.pkg)
		out, err := cmd.CombinedOutput()
		execs := "?"
		if m := fuzzExecs.FindAllStringSubmatch(string(out), -1); len(m) > 0 {
			execs = m[len(m)-1][1]
		}
		res := "0 crashers"
		if err != nil {
			crashers++
			res = "FAILED"
			t.Logf("%s:\n%s", tg.fn, tailLines(string(out), 30))
		}
		figs = append(figs, fmt.Sprintf("%s %s execs, %s", tg.fn, execs, res))
	}
	report(t, "7 fuzzing", crashers == 0, "%s each: %s … target 0 crashers", fuzzTime, strings.Join(figs, "; "))
}
