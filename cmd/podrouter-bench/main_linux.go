package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/podrouter/podrouter/lab"
)

// legacyCNI is a ruleset like a bridge/ptp CNI with the firewall and
// portmap/masquerade plugins: conntrack on every forwarded packet.
const legacyCNI = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:CNI-FORWARD - [0:0]
:CNI-ADMIN - [0:0]
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
-A CNI-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -m conntrack --ctstate INVALID -j DROP
-A CNI-FORWARD -s 10.0.0.0/8 -j ACCEPT
-A CNI-FORWARD -d 10.0.0.0/8 -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -s 10.0.0.0/8 ! -d 10.0.0.0/8 -j MASQUERADE
COMMIT
`

type mode struct {
	key, name  string
	lab        *lab.Lab
	client     string // namespace
	server     string // namespace
	dst        netip.Addr
	bind       netip.Addr // the server's address, when not dst (a Service)
	fastPathNS string     // node whose fast path counters must grow (d, f)
	pinDir     string
	// anyCounter: count every packet the fast path saw (passed to the
	// stack too), not only the forwarded ones.
	anyCounter bool
}

// serverAddr is where the servers listen.
func (m *mode) serverAddr() netip.Addr {
	if m.bind.IsValid() {
		return m.bind
	}
	return m.dst
}

type sample struct{ p50, p99, pps, gbps float64 }

func main() {
	podrouter := flag.String("podrouter", "bin/podrouter", "podrouter binary for the lab nodes")
	rounds := flag.Int("rounds", 7, "rounds (every mode once per round)")
	secs := flag.Int("seconds", 2, "seconds per measurement")
	cpu := flag.Int("cpu", 1, "CPU that client and server are pinned to")
	flag.Parse()
	if err := run(*podrouter, *rounds, *secs, *cpu); err != nil {
		fmt.Fprintln(os.Stderr, "podrouter-bench:", err)
		os.Exit(1)
	}
}

func run(bin string, rounds, secs, cpu int) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces)")
	}
	bin, err = filepath.Abs(bin)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	fmt.Printf("load before: %s", uptime())

	id := rand.IntN(1000)
	kernel, err := lab.Up(ctx, lab.Spec{Name: fmt.Sprintf("bk%03d", id), Nodes: 4, PodsPerNode: 1, PodrouterBin: bin}, log)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, lab.Down(context.WithoutCancel(ctx), kernel.Spec.Name)) }()
	fast, err := lab.Up(ctx, lab.Spec{Name: fmt.Sprintf("bf%03d", id), Nodes: 2, PodsPerNode: 1, PodrouterBin: bin, Datapath: true}, log)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, lab.Down(context.WithoutCancel(ctx), fast.Spec.Name)) }()
	for n := 3; n <= 4; n++ {
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", kernel.NodeNS(n), "iptables-restore")
		cmd.Stdin = strings.NewReader(legacyCNI)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("iptables-restore: %v: %s", err, out)
		}
	}

	svc, svcModes, err := serviceLab(ctx, bin, log)
	if svc != nil {
		defer func() { err = errors.Join(err, lab.Down(context.WithoutCancel(ctx), svc.Spec.Name)) }()
	}
	if err != nil {
		return err
	}

	_, node2 := lab.LinkV4(1, 2)
	pod := func(l *lab.Lab, n int) netip.Addr {
		a, perr := l.PodIP(ctx, n, 1, lab.IPv4)
		if perr != nil && err == nil {
			err = perr
		}
		return a
	}
	modes := []*mode{
		{key: "a", name: "node↔node", lab: kernel, client: kernel.NodeNS(1), server: kernel.NodeNS(2), dst: node2},
		{key: "b", name: "pod↔pod kernel", lab: kernel, client: kernel.PodNS(1, 1), server: kernel.PodNS(2, 1), dst: pod(kernel, 2)},
		{key: "c", name: "pod↔pod kernel + iptables/conntrack", lab: kernel, client: kernel.PodNS(3, 1), server: kernel.PodNS(4, 1), dst: pod(kernel, 4)},
		{key: "d", name: "pod↔pod podrouter fast path", lab: fast, client: fast.PodNS(1, 1), server: fast.PodNS(2, 1), dst: pod(fast, 2),
			fastPathNS: fast.NodeNS(1), pinDir: fast.Spec.NodePinDir(1)},
	}
	if err != nil {
		return err
	}
	modes = append(modes, svcModes...)
	pin := []string{"taskset", "-c", strconv.Itoa(cpu)}
	for _, m := range modes {
		for _, argv := range [][]string{
			{"sockperf", "server", "-i", m.serverAddr().String(), "-p", "11111"},
			{"iperf3", "-s", "-p", "5201"},
		} {
			srv := exec.Command("ip", append([]string{"netns", "exec", m.server}, append(pin, argv...)...)...)
			if err := srv.Start(); err != nil {
				return err
			}
			defer func() { srv.Process.Kill(); srv.Wait() }() //nolint:errcheck // our own server, stopping
		}
		// Warm up: neighbours resolved, fast path endpoints learnt.
		for range 20 {
			if _, err := lab.Exec(ctx, m.client, "ping", "-c", "2", "-i", "0.2", "-W", "1", m.serverAddr().String()); err == nil {
				break
			}
		}
	}
	time.Sleep(time.Second)
	checked := []*mode{modes[3], modes[5]}
	fwdBefore := map[string]uint64{}
	for _, m := range checked {
		if fwdBefore[m.key], err = forwarded(ctx, bin, m); err != nil {
			return err
		}
	}

	res := map[string][]sample{}
	start := time.Now()
	for r := range rounds {
		for i := range modes {
			m := modes[(i+r)%len(modes)]
			s, err := measure(ctx, m, pin, secs)
			if err != nil {
				return fmt.Errorf("round %d %s: %w", r+1, m.name, err)
			}
			res[m.key] = append(res[m.key], s)
			fmt.Fprintf(os.Stderr, "round %d/%d %-38s p50 %6.1f us  p99 %6.1f us  %8.0f pps  %5.2f Gbit/s\n",
				r+1, rounds, m.name, s.p50, s.p99, s.pps, s.gbps)
		}
	}
	fmt.Printf("load after:  %s", uptime())
	fmt.Printf("%d rounds x %d modes in %s\n", rounds, len(modes), time.Since(start).Round(time.Second))
	for _, m := range checked {
		after, err := forwarded(ctx, bin, m)
		if err != nil {
			return err
		}
		fmt.Printf("mode %s: the fast path on %s saw %d packets during the run\n", m.key, m.fastPathNS, after-fwdBefore[m.key])
		if after-fwdBefore[m.key] < 1000 {
			return fmt.Errorf("mode %s did not run through the fast path (%d packets)", m.key, after-fwdBefore[m.key])
		}
	}
	fmt.Println()
	printTable(modes[:4], res)
	printServiceTable(modes[4], modes[5], res)
	return nil
}

var pctRE = regexp.MustCompile(`percentile (\d+\.\d+) =\s+([0-9.]+)`)

func measure(ctx context.Context, m *mode, pin []string, secs int) (sample, error) {
	var s sample
	t := strconv.Itoa(secs)
	out, err := lab.Exec(ctx, m.client, append(pin, "sockperf", "ping-pong", "-i", m.dst.String(), "-p", "11111", "-t", t, "-m", "64")...)
	if err != nil {
		return s, err
	}
	for _, mm := range pctRE.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(mm[2], 64) // regexp guarantees a number
		switch mm[1] {
		case "50.000":
			s.p50 = v
		case "99.000":
			s.p99 = v
		}
	}
	if s.p50 == 0 {
		return s, fmt.Errorf("no percentiles in sockperf output:\n%s", out)
	}
	var u iperfResult
	if err := iperf(ctx, m, pin, &u, "-u", "-b", "0", "-l", "1400", "-t", t); err != nil {
		return s, err
	}
	if u.End.Sum.Seconds > 0 {
		s.pps = float64(u.End.Sum.Packets-u.End.Sum.LostPackets) / u.End.Sum.Seconds
	}
	var tcp iperfResult
	if err := iperf(ctx, m, pin, &tcp, "-t", t); err != nil {
		return s, err
	}
	s.gbps = tcp.End.SumReceived.BitsPerSecond / 1e9
	return s, nil
}

type iperfResult struct {
	End struct {
		Sum struct {
			Seconds     float64 `json:"seconds"`
			Packets     int64   `json:"packets"`
			LostPackets int64   `json:"lost_packets"`
		} `json:"sum"`
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

func iperf(ctx context.Context, m *mode, pin []string, v *iperfResult, args ...string) error {
	argv := append(append(append([]string{}, pin...), "iperf3", "-c", m.dst.String(), "-p", "5201", "-J", "--connect-timeout", "3000"), args...)
	for try := 0; ; try++ {
		out, err := lab.Exec(ctx, m.client, argv...)
		*v = iperfResult{}
		if jerr := json.Unmarshal([]byte(out), v); jerr != nil {
			return errors.Join(err, jerr)
		}
		// iperf3 -J may exit 0 with the error in the document; a busy
		// server ("server is busy") clears within a second.
		if v.Error == "" {
			return nil
		}
		if try == 5 {
			return fmt.Errorf("iperf3 %s: %s", strings.Join(args, " "), v.Error)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// forwarded sums the fast path counters of m's node that show m's
// packets: the forwarded ones ("fwd-*"), or with anyCounter every counter
// (forwarded, passed to the stack, dropped): Service flows are handed to
// the stack, so they show there rather than as forwarded.
func forwarded(ctx context.Context, bin string, m *mode) (uint64, error) {
	out, err := lab.Exec(ctx, m.fastPathNS, bin, "bpf", "stats", "--pin-dir", m.pinDir, "-o", "json")
	if err != nil {
		return 0, err
	}
	var cs []struct {
		Reason  string
		Packets uint64
	}
	if err := json.Unmarshal([]byte(out), &cs); err != nil {
		return 0, err
	}
	var sum uint64
	for _, c := range cs {
		if m.anyCounter || strings.HasPrefix(c.Reason, "fwd-") {
			sum += c.Packets
		}
	}
	return sum, nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// metrics are the table rows, per mode.
var metrics = []struct {
	name string
	get  func(sample) float64
	f    string
}{
	{"UDP 64 B latency p50 (us, half RTT)", func(s sample) float64 { return s.p50 }, "%.1f"},
	{"UDP 64 B latency p99 (us, half RTT)", func(s sample) float64 { return s.p99 }, "%.1f"},
	{"UDP 1400 B received (kpps)", func(s sample) float64 { return s.pps / 1e3 }, "%.1f"},
	{"TCP single stream (Gbit/s)", func(s sample) float64 { return s.gbps }, "%.2f"},
}

func printTable(modes []*mode, res map[string][]sample) {
	fmt.Println("| metric | mode | min | median | max | ratio to (a) | ratio to (b) |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|")
	for _, mt := range metrics {
		for _, m := range modes {
			var vals, ra, rb []float64
			for i, s := range res[m.key] {
				v := mt.get(s)
				vals = append(vals, v)
				if a := mt.get(res["a"][i]); a != 0 {
					ra = append(ra, v/a)
				}
				if b := mt.get(res["b"][i]); b != 0 {
					rb = append(rb, v/b)
				}
			}
			fmt.Printf("| %s | (%s) %s | "+mt.f+" | "+mt.f+" | "+mt.f+" | %.2f | %.2f |\n",
				mt.name, m.key, m.name, slices.Min(vals), median(vals), slices.Max(vals), median(ra), median(rb))
		}
	}
	fmt.Println("\nratios: median over rounds of the per-round ratio (paired); latency lower is better, rates higher is better")
}

func uptime() string {
	b, err := exec.Command("uptime").Output()
	if err != nil {
		return err.Error() + "\n"
	}
	return string(b)
}
