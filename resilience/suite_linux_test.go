package resilience

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/podrouter/podrouter/api"
	"github.com/podrouter/podrouter/health"
	"github.com/podrouter/podrouter/lab"
)

var (
	longRun      = flag.Bool("long", os.Getenv("RESILIENCE_LONG") != "", "run the long versions (also RESILIENCE_LONG=1)")
	podrouterBin string
	gobgpBin     string
	binDir       string
)

// size returns the CI figure or, with -long, the long one.
func size[T any](ci, long T) T {
	if *longRun {
		return long
	}
	return ci
}

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Geteuid() != 0 || testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "podrouter-resilience-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	podrouterBin = filepath.Join(dir, "podrouter")
	gobgpBin = filepath.Join(dir, "gobgp")
	for bin, pkg := range map[string]string{podrouterBin: "../cmd/podrouter", gobgpBin: "github.com/osrg/gobgp/v4/cmd/gobgp"} {
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			os.Exit(1)
		}
	}
	start := time.Now()
	code := m.Run()
	downExtraLabs()
	os.RemoveAll(dir)
	printTable(time.Since(start))
	os.Exit(code)
}

// The table.

type line struct {
	name, text string
	pass       bool
}

var (
	tableMu sync.Mutex
	table   []line
)

// report prints the test's one line and records it; a figure that misses
// its target fails the test.
func report(t *testing.T, name string, pass bool, format string, a ...any) {
	t.Helper()
	text := fmt.Sprintf(format, a...)
	verdict := "ok"
	if !pass {
		verdict = "MISSED"
		t.Errorf("%s: %s", name, text)
	}
	fmt.Printf("RESILIENCE %s: %s [%s]\n", name, text, verdict)
	tableMu.Lock()
	table = append(table, line{name, text, pass})
	tableMu.Unlock()
}

func printTable(took time.Duration) {
	tableMu.Lock()
	defer tableMu.Unlock()
	if len(table) == 0 {
		return
	}
	mode := "CI-sized"
	if *longRun {
		mode = "long"
	}
	fmt.Printf("\n== resilience suite (%s, %s): %d lines\n", mode, took.Round(time.Second), len(table))
	missed := 0
	for _, l := range table {
		v := "ok"
		if !l.pass {
			v, missed = "MISSED", missed+1
		}
		fmt.Printf("%-6s %s: %s\n", v, l.name, l.text)
	}
	fmt.Printf("== %d of %d targets met\n", len(table)-missed, len(table))
}

func requireLab(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces); CI runs as root")
	}
	if testing.Short() {
		t.Skip("lab suite skipped in -short mode")
	}
	for _, f := range []string{"/usr/lib/frr/bgpd", "/usr/lib/cni/ptp"} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%s missing: run `make deps` (CI installs it)", f)
		}
	}
}

// Labs.

func labLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// startLab brings a lab up with the suite's podrouter binary.
func startLab(spec lab.Spec) (*lab.Lab, error) {
	spec.PodrouterBin = podrouterBin
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return lab.Up(ctx, spec, labLogger())
}

// upLab builds a lab with a random name that the test tears down.
func upLab(t *testing.T, spec lab.Spec) *lab.Lab {
	t.Helper()
	spec.Name = fmt.Sprintf("r%c%03d", 'a'+rune(rand.IntN(26)), rand.IntN(1000))
	l, err := startLab(spec)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() { downLab(t, l) })
	return l
}

func downLab(t *testing.T, l *lab.Lab) {
	if t.Failed() {
		for n := 1; n <= l.Spec.Nodes && n <= 3; n++ {
			b, _ := os.ReadFile(filepath.Join(l.StateDir(), lab.NodeName(n), "podrouter.log"))
			t.Logf("%s log (tail):\n%s", lab.NodeName(n), tailLines(string(b), 20))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := l.Down(ctx); err != nil {
		t.Errorf("lab down: %v", err)
	}
}

// onceLab is a lab several tests share: the first brings it up, and it
// is torn down after the run (extraLabs).
type onceLab struct {
	once sync.Once
	l    *lab.Lab
	err  error
}

// get returns the lab, bringing it up with spec (then waiting for ready,
// if not nil) on first use; it fails t when that failed.
func (o *onceLab) get(t *testing.T, what string, spec lab.Spec, ready func(*lab.Lab) error) *lab.Lab {
	t.Helper()
	requireLab(t)
	o.once.Do(func() {
		o.l, o.err = startLab(spec)
		if o.err != nil {
			return
		}
		extraLabs = append(extraLabs, o.l)
		if ready != nil {
			o.err = ready(o.l)
		}
	})
	if o.err != nil {
		t.Fatalf("%s: %v", what, o.err)
	}
	return o.l
}

// sharedLab is the standard rack most tests use: two ToRs, three nodes,
// two pods each, the fast path on. Tests that use it leave it as they
// found it (daemons running with the lab's config, links up).
var shared onceLab

func sharedLab(t *testing.T) *lab.Lab {
	t.Helper()
	spec := lab.Spec{Name: fmt.Sprintf("rs%03d", rand.IntN(1000)), ToRs: 2, Datapath: true}
	return shared.get(t, "shared lab", spec, func(l *lab.Lab) error {
		// The fast path attached everywhere: uplinks and pod veths.
		for n := 1; n <= l.Spec.Nodes; n++ {
			var why string
			if poll(60*time.Second, 200*time.Millisecond, func() (ok bool) { ok, why = hooksOK(l, n); return ok }) < 0 {
				return fmt.Errorf("node%d fast path not attached: %s", n, why)
			}
		}
		return nil
	})
}

// Helpers.

func tailLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

func waitFor(t *testing.T, what string, timeout time.Duration, f func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, why := f()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// poll calls ok every interval until it is true or timeout passes and
// returns how long it took (-1: never).
func poll(timeout, interval time.Duration, ok func() bool) time.Duration {
	start := time.Now()
	for time.Since(start) < timeout {
		if ok() {
			return time.Since(start)
		}
		time.Sleep(interval)
	}
	return -1
}

func nodeExec(t *testing.T, l *lab.Lab, n int, argv ...string) string {
	t.Helper()
	out, err := l.Exec(context.Background(), l.NodeNS(n), argv...)
	if err != nil {
		t.Fatalf("node%d: %s: %v\n%s", n, strings.Join(argv, " "), err, out)
	}
	return out
}

// metricSamples scrapes node n's /metrics and returns the values of the
// samples of name (an error if there are none).
func metricSamples(l *lab.Lab, n int, name string) ([]float64, error) {
	out, err := l.Exec(context.Background(), l.NodeNS(n), "curl", "-sf", "--max-time", "3", "http://"+lab.LinkAddrNode(1, n).String()+":9842/metrics")
	if err != nil {
		return nil, err
	}
	var vs []float64
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("no %s", name)
	}
	return vs, nil
}

// metricSum is the sum of node n's samples of name.
func metricSum(l *lab.Lab, n int, name string) (float64, error) {
	vs, err := metricSamples(l, n, name)
	var sum float64
	for _, v := range vs {
		sum += v
	}
	return sum, err
}

// metricMax is the largest of node n's samples of name.
func metricMax(l *lab.Lab, n int, name string) (float64, error) {
	vs, err := metricSamples(l, n, name)
	if err != nil {
		return 0, err
	}
	return slices.Max(vs), nil
}

func socketPath(l *lab.Lab, n int) string {
	return filepath.Join(l.StateDir(), lab.NodeName(n), "podrouter.sock")
}

// nodeStatus runs `podrouter status -o json` on node n.
func nodeStatus(l *lab.Lab, n int) (api.Status, error) {
	var st api.Status
	out, err := l.Exec(context.Background(), l.NodeNS(n), podrouterBin, "status", "-o", "json", "--socket", socketPath(l, n))
	if err == nil {
		err = json.Unmarshal([]byte(out), &st)
	}
	return st, err
}

// established reports whether node n has want established sessions.
func established(l *lab.Lab, n, want int) (bool, string) {
	st, err := nodeStatus(l, n)
	if err != nil {
		return false, err.Error()
	}
	c := 0
	for _, p := range st.Peers {
		if p.State == health.SessionEstablished {
			c++
		}
	}
	return c == want, fmt.Sprintf("%d of %d established: %+v", c, want, st.Peers)
}

// inNS runs f on a thread inside namespace ns: sockets f opens stay there.
func inNS(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the thread dies with the goroutine: never reused outside ns
		h, err := netns.GetFromName(ns)
		if err != nil {
			errc <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

// procStats reads RSS (bytes), open fds and CPU time of pid.
type procStats struct {
	RSS uint64
	FDs int
	CPU time.Duration
}

func readProc(pid int) (procStats, error) {
	var ps procStats
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ps, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			ps.RSS = kb * 1024
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return ps, err
	}
	ps.FDs = len(fds)
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ps, err
	}
	f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+2:]))
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	stt, _ := strconv.ParseUint(f[12], 10, 64)
	ps.CPU = time.Duration(ut+stt) * time.Second / 100 // USER_HZ
	return ps, nil
}

// every calls f every d (d after the previous call returned) until the
// returned stop is called; stop waits for a running f.
func every(d time.Duration, f func()) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-time.After(d):
			}
			f()
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// torSampler samples ToR tor's table every interval for prefixes; missing
// has one entry per sample that lacked one of them.
type torSampler struct {
	stop    chan struct{}
	done    chan struct{}
	samples int
	missing []string
}

func sampleToR(l *lab.Lab, tor int, prefixes []netip.Prefix, every time.Duration) *torSampler {
	s := &torSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tk.C:
			}
			have := map[netip.Prefix]bool{}
			for _, f := range []lab.Family{lab.IPv4, lab.IPv6} {
				rs, err := l.ToRRoutes(context.Background(), tor, f)
				if err != nil {
					continue // a vtysh hiccup is no sample
				}
				for _, p := range rs {
					have[p] = true
				}
			}
			s.samples++
			var miss []string
			for _, p := range prefixes {
				if !have[p] {
					miss = append(miss, p.String())
				}
			}
			if len(miss) > 0 {
				s.missing = append(s.missing, fmt.Sprintf("%s at %s", strings.Join(miss, ","), time.Now().Format("15:04:05.000")))
			}
		}
	}()
	return s
}

func (s *torSampler) Stop() (samples int, missing []string) {
	close(s.stop)
	<-s.done
	return s.samples, s.missing
}

// routeMonitor records the `ip monitor route` lines of a namespace that
// contain a string.
type routeMonitor struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func monitorRoutes(t *testing.T, ns, match string) *routeMonitor {
	t.Helper()
	m := &routeMonitor{cmd: exec.Command("ip", "-n", ns, "monitor", "route"), done: make(chan struct{})}
	out, err := m.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(m.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ln := sc.Text()
			if strings.Contains(ln, match) {
				m.mu.Lock()
				m.lines = append(m.lines, time.Now().Format("15:04:05.000 ")+ln)
				m.mu.Unlock()
			}
		}
	}()
	time.Sleep(200 * time.Millisecond) // subscribed
	return m
}

func (m *routeMonitor) Stop() []string {
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lines
}

// daemon is a podrouter started by a test with its own config.
type daemon struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// labConfig returns node n's rendered config.
func labConfig(t *testing.T, l *lab.Lab, n int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(l.StateDir(), lab.NodeName(n), "podrouter.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// edit replaces the first from (which must be there) with to.
func edit(t *testing.T, conf, from, to string) string {
	t.Helper()
	if !strings.Contains(conf, from) {
		t.Fatalf("config has no %q", from)
	}
	return strings.Replace(conf, from, to, 1)
}

// startDaemon stops the lab's speaker on node n and starts podrouter
// there with conf instead; Cleanup puts the lab's own back.
func startDaemon(t *testing.T, l *lab.Lab, n int, conf string) *daemon {
	t.Helper()
	ctx := context.Background()
	if err := l.StopSpeaker(ctx, n, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "podrouter.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: exec.Command("ip", "netns", "exec", l.NodeNS(n), podrouterBin, "run", "--config", path), log: &syncBuffer{}, done: make(chan error, 1)}
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("node%d daemon (edited config):\n%s", n, tailLines(d.log.String(), 25))
		}
		if pid, _ := l.SpeakerPID(n); pid != 0 {
			return // a later daemon's cleanup put it back already
		}
		if err := l.StartSpeaker(context.Background(), n); err != nil {
			t.Errorf("restart the lab's speaker on node%d: %v", n, err)
		}
	})
	return d
}

func (d *daemon) stop(sig syscall.Signal) {
	if d.cmd.ProcessState != nil {
		return
	}
	_ = d.cmd.Process.Signal(sig) // exited already: harmless
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

func sortedKeys[M ~map[K]V, K interface{ ~string }, V any](m M) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// extraLabs are the onceLabs, torn down after the run.
var extraLabs []*lab.Lab

func downExtraLabs() {
	for _, l := range extraLabs {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if err := l.Down(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "lab down:", err)
		}
		cancel()
	}
}
