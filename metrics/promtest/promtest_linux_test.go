package promtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"
)

func requirePrometheus(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces); CI runs as root")
	}
	if _, err := os.Stat(DefaultBinary); err != nil {
		t.Fatalf("%s missing (install Debian's prometheus package): %v", DefaultBinary, err)
	}
}

// Prometheus started in a network namespace scrapes a target that exists
// only inside it, and queries are dialled from inside it too.
func TestStartInNetNS(t *testing.T) {
	requirePrometheus(t)
	ns := fmt.Sprintf("promtest-%08x", rand.Uint32())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}

	var ln net.Listener
	if err := inNetNS(ns, func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "# TYPE promtest_inside gauge\npromtest_inside 42\n")
	})}
	go srv.Serve(ln) //nolint:errcheck // ends with Close below
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	p, err := Start(ctx, []string{ln.Addr().String()}, Options{NetNS: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
	}()
	res, err := p.WaitFor(ctx, "promtest_inside")
	if err != nil {
		t.Fatalf("%v\n%s", err, p.Log())
	}
	if len(res) != 1 || res[0].Value != 42 || res[0].Labels["job"] != "podrouter" {
		t.Errorf("promtest_inside: %v", res)
	}
}

func TestRenderConfig(t *testing.T) {
	got := renderConfig(Options{ScrapeInterval: time.Second, Job: "j"}, []string{"127.0.0.1:1", "[::1]:2"})
	want := `global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: "j"
    static_configs:
      - targets:
          - "127.0.0.1:1"
          - "[::1]:2"
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
