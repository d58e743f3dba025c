package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/podrouter/podrouter/lab"
)

// Traffic across nodes while the operator works: pings at 100/s and TCP
// streams through the lab backend's line echo, counted as an operator
// would count them (ping's own summary; a stream is cut when a write, a
// read or an echo fails).

// pinger is `ping -i 0.01` from one pod to an address, stopped with
// SIGINT so ping prints its summary.
type pinger struct {
	what string
	cmd  *exec.Cmd
	out  syncBuffer
}

func startPing(t *testing.T, l *lab.Lab, from *corev1.Pod, to netip.Addr) *pinger {
	t.Helper()
	cmd, err := l.PodCommand(context.Background(), from, "ping", "-n", "-i", "0.01", "-W", "1", to.String())
	if err != nil {
		t.Fatal(err)
	}
	p := &pinger{what: fmt.Sprintf("ping %s (%s) -> %s", from.Name, from.Spec.NodeName, to), cmd: cmd}
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return p
}

var pingSummaryRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// stop ends the ping and returns what it sent and how many went
// unanswered.
func (p *pinger) stop(t *testing.T) (sent, lost int) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGINT) // exited already: Wait reports it
	_ = p.cmd.Wait()                         // ping exits 1 when a reply was missing; the summary says how many
	m := pingSummaryRE.FindStringSubmatch(p.out.String())
	if m == nil {
		t.Fatalf("%s: no summary:\n%s", p.what, tailLines(p.out.String(), 5))
	}
	sent, _ = strconv.Atoi(m[1])
	recv, _ := strconv.Atoi(m[2])
	return sent, sent - recv
}

// stream is one TCP connection from a pod to an echo backend, sending a
// numbered line every 10 ms and checking each echo.
type stream struct {
	what  string
	lines int
	err   error
}

// startStreams opens n TCP connections from `from` to addr:9000 and keeps
// them busy until stop is closed; done is closed when all have ended.
func startStreams(t *testing.T, l *lab.Lab, from *corev1.Pod, addr netip.Addr, n int, stop <-chan struct{}) ([]*stream, *sync.WaitGroup) {
	t.Helper()
	var wg sync.WaitGroup
	var out []*stream
	for i := range n {
		ap := netip.AddrPortFrom(addr, lab.BackendEchoPort)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := l.PodDial(ctx, from, "tcp", ap.String())
		cancel()
		if err != nil {
			t.Fatalf("tcp %s -> %s: %v", from.Name, ap, err)
		}
		s := &stream{what: fmt.Sprintf("tcp#%d %s (%s) -> %s [%s]", i, from.Name, from.Spec.NodeName, ap, c.LocalAddr())}
		out = append(out, s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			s.err = s.run(c, stop)
		}()
	}
	return out, &wg
}

func (s *stream) run(c net.Conn, stop <-chan struct{}) error {
	r := bufio.NewReader(c)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return nil
		case <-tick.C:
		}
		// A blackholed path stalls rather than fails: 5 s without the
		// echo is a cut stream.
		if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
			return err
		}
		msg := "line " + strconv.Itoa(seq)
		if _, err := fmt.Fprintf(c, "%s\n", msg); err != nil {
			return fmt.Errorf("write %d: %w", seq, err)
		}
		got, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("read echo %d: %w", seq, err)
		}
		if !strings.HasSuffix(strings.TrimRight(got, "\n"), " "+msg) {
			return fmt.Errorf("echo %d: %q", seq, got)
		}
		s.lines++
	}
}

// nodeState is what podrouter may leave on a node, rendered for
// comparison: every route of every table, what the node's bpffs holds,
// the CNI config directory and every tcx ingress program.
func nodeState(t *testing.T, l *lab.Lab, n int) string {
	t.Helper()
	ctx := context.Background()
	r := l.Spec.NodeRuntime(n)
	var b strings.Builder
	for _, argv := range [][]string{
		{"ip", "-4", "route", "show", "table", "all"},
		{"ip", "-6", "route", "show", "table", "all"},
		{"find", "/sys/fs/bpf"},
		{"ls", "-A", "/etc/cni/net.d"},
		{podrouterBin, "bpf", "hook", "list", "--pin-dir", "/sys/fs/bpf/podrouter"},
	} {
		out, err := r.Exec(ctx, argv...)
		if err != nil {
			t.Fatalf("%s: %s: %v", r.Node, strings.Join(argv, " "), err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		// Kernel-managed IPv6 entries (multicast, local link routes)
		// come and go with interfaces the pods made; not podrouter's.
		var keep []string
		for _, ln := range lines {
			if strings.HasPrefix(ln, "multicast ") || strings.Contains(ln, "fe80::/64") || (strings.HasPrefix(ln, "local ") && strings.Contains(ln, "fe80:")) {
				continue
			}
			keep = append(keep, ln)
		}
		sort.Strings(keep)
		fmt.Fprintf(&b, "$ %s\n%s\n", strings.Join(argv, " "), strings.Join(keep, "\n"))
	}
	return b.String()
}

// upgrade restarts the DaemonSet (`kubectl rollout restart`) while pod a
// pings b and c at 100/s (IPv4 and IPv6) and b pings c, and four TCP
// streams run from a to b and c: nothing may be lost or cut. Every
// podrouter pod must have been replaced.
func upgrade(t *testing.T, l *lab.Lab, cs kubernetes.Interface, kubectl func(...string) string, a, b, c *corev1.Pod) {
	old := map[string]types.UID{}
	for _, p := range podrouterPods(t, cs) {
		old[p.Spec.NodeName] = p.UID
	}
	stop := make(chan struct{})
	pings := []*pinger{
		startPing(t, l, a, lab.PodIPs(b)[0]),
		startPing(t, l, a, lab.PodIPs(c)[1]),
		startPing(t, l, b, lab.PodIPs(c)[0]),
	}
	s1, wg1 := startStreams(t, l, a, lab.PodIPs(b)[0], 2, stop)
	s2, wg2 := startStreams(t, l, a, lab.PodIPs(c)[1], 2, stop)
	streams := append(s1, s2...)
	time.Sleep(2 * time.Second) // flowing before the restart
	start := time.Now()
	kubectl("-n", "podrouter", "rollout", "restart", "daemonset/podrouter")
	kubectl("-n", "podrouter", "rollout", "status", "daemonset/podrouter", "--timeout", "180s")
	rollout := time.Since(start)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.WaitReady(ctx); err != nil {
		t.Errorf("after the rollout: %v", err)
	}
	time.Sleep(2 * time.Second) // and after
	close(stop)
	wg1.Wait()
	wg2.Wait()
	t.Logf("kubectl rollout restart daemonset/podrouter: rolled out on 3 nodes in %s", rollout.Round(100*time.Millisecond))
	for _, p := range pings {
		sent, lost := p.stop(t)
		t.Logf("%s: %d sent, %d lost", p.what, sent, lost)
		if lost > 0 || sent < 100 {
			t.Errorf("%s: %d of %d lost during the upgrade", p.what, lost, sent)
		}
	}
	cut := 0
	for _, s := range streams {
		t.Logf("%s: %d lines echoed, error %v", s.what, s.lines, s.err)
		if s.err != nil {
			cut++
		}
	}
	if cut > 0 {
		t.Errorf("%d of %d TCP streams cut during the upgrade", cut, len(streams))
	}
	for _, p := range podrouterPods(t, cs) {
		if old[p.Spec.NodeName] == p.UID {
			t.Errorf("%s on %s was not replaced by the rollout", p.Name, p.Spec.NodeName)
		}
	}
}
