package resilience

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/podrouter/podrouter/api"
	"github.com/podrouter/podrouter/lab"
)

// notificationsRecv sums the NOTIFICATIONs ToR tor received from node n's
// sessions.
func notificationsRecv(t *testing.T, l *lab.Lab, tor, n int) int {
	t.Helper()
	total := 0
	_, v4 := lab.LinkV4(tor, n)
	_, v6 := lab.LinkV6(tor, n)
	for _, a := range []netip.Addr{v4, v6} {
		var doc map[string]struct {
			MessageStats struct {
				NotificationsRecv int `json:"notificationsRecv"`
			} `json:"messageStats"`
		}
		if err := l.VtyshJSON(context.Background(), tor, "show bgp neighbors "+a.String()+" json", &doc); err != nil {
			t.Fatal(err)
		}
		total += doc[a.String()].MessageStats.NotificationsRecv
	}
	return total
}

func allToRs(l *lab.Lab) []int {
	var out []int
	for k := 1; k <= l.Spec.ToRs; k++ {
		out = append(out, k)
	}
	return out
}

// Test 2: SIGTERM and restart with graceful restart: the ToRs never lose
// node1's pod CIDRs (100 ms samples) and receive no NOTIFICATION; the
// negative control, graceful restart off, shows the outage.
func TestSIGTERMGracefulRestart(t *testing.T) {
	l := sharedLab(t)
	ctx := context.Background()
	nBefore := 0
	for _, k := range allToRs(l) {
		nBefore += notificationsRecv(t, l, k, 1)
	}
	var samplers []*torSampler
	for _, k := range allToRs(l) {
		samplers = append(samplers, sampleToR(l, k, lab.PodCIDRs(1), 100*time.Millisecond))
	}
	time.Sleep(300 * time.Millisecond)
	if err := l.StopSpeaker(ctx, 1, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := l.StartSpeaker(ctx, 1); err != nil {
		t.Fatal(err)
	}
	back := waitFor(t, "node1 sessions back", 60*time.Second, func() (bool, string) { return established(l, 1, 4) })
	time.Sleep(2 * time.Second) // past the ToR's stale-path sweep after End-of-RIB
	samples, missing := 0, 0
	for _, s := range samplers {
		n, m := s.Stop()
		samples, missing = samples+n, missing+len(m)
	}
	nAfter := 0
	for _, k := range allToRs(l) {
		nAfter += notificationsRecv(t, l, k, 1)
	}

	// Negative control: the same restart with graceful restart off.
	conf := strings.ReplaceAll(labConfig(t, l, 1), "connectRetry: 1s}", "connectRetry: 1s, gracefulRestart: {enabled: false}}")
	d := startDaemon(t, l, 1, conf)
	waitFor(t, "node1 sessions up without graceful restart", 60*time.Second, func() (bool, string) { return established(l, 1, 4) })
	waitFor(t, "node1's pod CIDRs at the ToRs", 30*time.Second, func() (bool, string) {
		return l.WaitToRRoutes(ctx, lab.PodCIDRs(1)) == nil, ""
	})
	ctl := sampleToR(l, 1, lab.PodCIDRs(1), 100*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	d.stop(syscall.SIGTERM)
	time.Sleep(2 * time.Second)
	ctlSamples, ctlMissing := ctl.Stop()
	report(t, "2 SIGTERM restart with graceful restart", missing == 0 && nAfter == nBefore && len(ctlMissing) > 0,
		"ToR samples without node1's CIDR %d of %d, NOTIFICATIONs sent %d, sessions back in %s; control without GR: %d of %d samples missing … target 0, 0, control > 0",
		missing, samples, nAfter-nBefore, back.Round(100*time.Millisecond), len(ctlMissing), ctlSamples)
}

// streams are TCP connections from pod (1,1) to pod (2,1) exchanging a
// message every 100 ms; a stream is cut when a write or read fails or an
// echo takes longer than 2 s.
type streams struct {
	cut      atomic.Int32
	exchange atomic.Int64
	maxGap   atomic.Int64 // ns
	stop     chan struct{}
	wg       sync.WaitGroup
	errs     sync.Map
}

func startStreams(t *testing.T, l *lab.Lab, n int, port int) *streams {
	t.Helper()
	ctx := context.Background()
	dst, err := l.PodIP(ctx, 2, 1, lab.IPv4)
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	if err := inNS(l.PodNS(2, 1), func() error {
		var err error
		ln, err = net.Listen("tcp4", ":"+strconv.Itoa(port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	s := &streams{stop: make(chan struct{})}
	for i := range n {
		var c net.Conn
		if err := inNS(l.PodNS(1, 1), func() error {
			var err error
			c, err = net.DialTimeout("tcp4", net.JoinHostPort(dst.String(), strconv.Itoa(port)), 5*time.Second)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			buf := make([]byte, 8)
			last := time.Now()
			for {
				select {
				case <-s.stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				_ = c.SetDeadline(time.Now().Add(2 * time.Second))
				if _, err := c.Write([]byte("podrout" + strconv.Itoa(i%10))); err != nil {
					s.cut.Add(1)
					s.errs.Store(i, err)
					return
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					s.cut.Add(1)
					s.errs.Store(i, err)
					return
				}
				now := time.Now()
				if g := now.Sub(last); int64(g) > s.maxGap.Load() {
					s.maxGap.Store(int64(g))
				}
				last = now
				s.exchange.Add(1)
			}
		}()
	}
	return s
}

func (s *streams) Stop() { close(s.stop); s.wg.Wait() }

// pinger runs ping at 100/s from one pod to another until stopped.
type pinger struct {
	cmd *exec.Cmd
	out *syncBuffer
}

func startPing(t *testing.T, l *lab.Lab, src string, dstIP netip.Addr) *pinger {
	t.Helper()
	p := &pinger{out: &syncBuffer{}}
	p.cmd = exec.Command("ip", "netns", "exec", src, "ping", "-n", "-q", "-i", "0.01", "-W", "1", dstIP.String())
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
	return p
}

var pingStats = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// Stop ends ping with SIGINT and returns sent and received.
func (p *pinger) Stop() (sent, recv int, err error) {
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	_ = p.cmd.Wait()
	m := pingStats.FindStringSubmatch(p.out.String())
	if m == nil {
		return 0, 0, fmt.Errorf("no ping summary: %s", p.out.String())
	}
	sent, _ = strconv.Atoi(m[1])
	recv, _ = strconv.Atoi(m[2])
	return sent, recv, nil
}

// hooksOK checks that every podrouter hook of node n (uplinks and pod
// veths) has exactly one program on tcx ingress.
func hooksOK(l *lab.Lab, n int) (bool, string) {
	out, err := l.Exec(context.Background(), l.NodeNS(n), podrouterBin, "bpf", "hook", "list", "-o", "json", "--pin-dir", l.Spec.NodePinDir(n))
	if err != nil {
		return false, err.Error()
	}
	var hs []api.Hook
	if err := json.Unmarshal([]byte(out), &hs); err != nil {
		return false, err.Error()
	}
	want := l.Spec.ToRs + l.Spec.PodsPerNode
	if len(hs) != want {
		return false, fmt.Sprintf("%d hooks, want %d: %s", len(hs), want, out)
	}
	for _, h := range hs {
		if len(h.Programs) != 1 {
			return false, fmt.Sprintf("%s has %d programs on tcx ingress", h.IfName, len(h.Programs))
		}
	}
	return true, ""
}

// ctCount counts node n's conntrack entries with port at either end.
func ctCount(t *testing.T, l *lab.Lab, n, port int) int {
	t.Helper()
	out := nodeExec(t, l, n, podrouterBin, "bpf", "ct", "list", "--pin-dir", l.Spec.NodePinDir(n), "--proto", "tcp", "--port", strconv.Itoa(port))
	return max(0, len(strings.Split(strings.TrimSpace(out), "\n"))-1)
}

// Test 1: kill -9 under traffic. 100 pings/s and 10 TCP streams from a
// pod of node1 to a pod of node2; node1's daemon is killed with SIGKILL
// and restarted 3 s later, again and again. Lost pings 0, streams cut 0,
// one program per tcx hook after every cycle, the streams' conntrack
// entries kept, the ToRs never without node1's pod CIDRs (100 ms samples).
func TestKill9UnderTraffic(t *testing.T) {
	l := sharedLab(t)
	ctx := context.Background()
	cycles := size(3, 10)
	const port = 7001
	st := startStreams(t, l, 10, port)
	dst, _ := l.PodIP(ctx, 2, 1, lab.IPv4)
	ping := startPing(t, l, l.PodNS(1, 1), dst)
	time.Sleep(time.Second)
	ctBefore := ctCount(t, l, 1, port)
	var samplers []*torSampler
	for _, k := range allToRs(l) {
		samplers = append(samplers, sampleToR(l, k, lab.PodCIDRs(1), 100*time.Millisecond))
	}
	badHooks, ctLost := 0, 0
	var worstBack time.Duration
	for i := range cycles {
		if err := l.StopSpeaker(ctx, 1, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		if err := l.StartSpeaker(ctx, 1); err != nil {
			t.Fatal(err)
		}
		back := waitFor(t, "node1 sessions back", 60*time.Second, func() (bool, string) { return established(l, 1, 4) })
		worstBack = max(worstBack, back)
		if ok, why := hooksOK(l, 1); !ok {
			badHooks++
			t.Logf("cycle %d: %s", i+1, why)
		}
		if c := ctCount(t, l, 1, port); c < ctBefore {
			ctLost += ctBefore - c
		}
		time.Sleep(time.Second)
	}
	time.Sleep(2 * time.Second)
	sent, recv, err := ping.Stop()
	if err != nil {
		t.Fatal(err)
	}
	st.Stop()
	samples, missing := 0, 0
	for _, s := range samplers {
		n, m := s.Stop()
		samples, missing = samples+n, missing+len(m)
	}
	st.errs.Range(func(k, v any) bool { t.Logf("stream %v: %v", k, v); return true })
	report(t, "1 kill -9 under traffic", sent-recv == 0 && st.cut.Load() == 0 && badHooks == 0 && ctLost == 0 && missing == 0,
		"%d cycles: lost pings %d of %d, streams cut %d/10 (longest echo gap %s), cycles with a hook not at 1 program %d, CT entries lost %d of %d, ToR samples without the CIDR %d of %d, sessions back in ≤ %s … target 0, 0/10, 0, 0, 0",
		cycles, sent-recv, sent, st.cut.Load(), time.Duration(st.maxGap.Load()).Round(time.Millisecond), badHooks, ctLost, ctBefore, missing, samples, worstBack.Round(100*time.Millisecond))
}
