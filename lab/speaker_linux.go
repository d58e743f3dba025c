package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrRunning is returned by StartSpeaker when the node's speaker runs.
var ErrRunning = errors.New("speaker already running")

func (l *Lab) nodeDir(n int) string { return filepath.Join(l.Spec.StateDir(), NodeName(n)) }

func (l *Lab) speakerPidfile(n int) string {
	return filepath.Join(l.nodeDir(n), l.Spec.Speaker+".pid")
}

// SpeakerPID returns the pid of node n's speaker, or 0 if it is not running.
func (l *Lab) SpeakerPID(n int) (int, error) {
	pid, err := readPid(l.speakerPidfile(n))
	if err != nil || pid == 0 {
		return 0, err
	}
	if !alive(pid) || !inNS(pid, filepath.Join(netnsDir, l.NodeNS(n))) {
		return 0, nil // stale pidfile (or a reused pid): not ours
	}
	return pid, nil
}

// StartSpeaker starts node n's BGP speaker (podrouter or BIRD, per the
// spec) detached in the node's namespace and checks that it stays up for
// a moment.
func (l *Lab) StartSpeaker(ctx context.Context, n int) error {
	pid, err := l.startSpeaker(n)
	if err != nil {
		return err
	}
	if left := waitGone(ctx, []int{pid}, 300*time.Millisecond); len(left) == 0 {
		return fmt.Errorf("%s speaker on %s exited at once:\n%s", l.Spec.Speaker, NodeName(n), tail(l.speakerLog(n), 20))
	}
	l.log.Debug("speaker started", "node", n, "speaker", l.Spec.Speaker, "pid", pid)
	return nil
}

func (l *Lab) speakerLog(n int) string {
	if l.Spec.Speaker == SpeakerBIRD {
		return filepath.Join(l.nodeDir(n), "bird.out")
	}
	return filepath.Join(l.nodeDir(n), "podrouter.log")
}

// startSpeaker renders the config and starts the speaker without waiting.
func (l *Lab) startSpeaker(n int) (int, error) {
	if pid, err := l.SpeakerPID(n); err != nil || pid != 0 {
		return 0, errors.Join(err, fmt.Errorf("%s: %w (pid %d)", NodeName(n), ErrRunning, pid))
	}
	dir := l.nodeDir(n)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	d := l.Spec.nodeData(n)
	var argv []string
	switch l.Spec.Speaker {
	case SpeakerBIRD:
		b, err := render(birdTmpl, d)
		if err != nil {
			return 0, err
		}
		conf := filepath.Join(dir, "bird.conf")
		if err := os.WriteFile(conf, b, 0o644); err != nil {
			return 0, err
		}
		// -f: stay in the foreground, so the pid we start is BIRD's.
		argv = []string{"bird", "-f", "-c", conf, "-s", filepath.Join(dir, "bird.ctl"), "-P", l.speakerPidfile(n)}
	default:
		b, err := render(podrouterTmpl, d)
		if err != nil {
			return 0, err
		}
		conf := filepath.Join(dir, "podrouter.yaml")
		if err := os.WriteFile(conf, b, 0o644); err != nil {
			return 0, err
		}
		if l.Spec.Password != "" {
			if err := os.WriteFile(l.Spec.PasswordFile(n), []byte(l.Spec.Password+"\n"), 0o600); err != nil {
				return 0, err
			}
		}
		argv = []string{l.Spec.PodrouterBin, "run", "--config", conf}
	}
	return startDetached(l.NodeNS(n), argv, l.speakerLog(n), l.speakerPidfile(n))
}

// StopSpeaker sends sig to node n's speaker and waits until it is gone
// (up to 20 s). SIGTERM is a graceful stop (BIRD sends a Cease; podrouter
// does what its shutdown mode says), SIGKILL a crash. Stopping a speaker
// that does not run is not an error.
func (l *Lab) StopSpeaker(ctx context.Context, n int, sig syscall.Signal) error {
	pid, err := l.SpeakerPID(n)
	if err != nil || pid == 0 {
		return err
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s speaker pid %d: %w", NodeName(n), pid, err)
	}
	if left := waitGone(ctx, []int{pid}, 20*time.Second); len(left) > 0 {
		return fmt.Errorf("%s speaker pid %d still running after %s", NodeName(n), pid, sig)
	}
	_ = os.Remove(l.speakerPidfile(n)) // BIRD may have removed it already
	l.log.Debug("speaker stopped", "node", n, "signal", sig.String())
	return nil
}

var pingRecv = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// Ping sends count echo requests from namespace ns to dst and fails unless
// every one is answered.
func Ping(ctx context.Context, ns string, dst netip.Addr, count int) error {
	fam := "-4"
	if familyOf(dst) == IPv6 {
		fam = "-6"
	}
	out, err := Exec(ctx, ns, "ping", fam, "-n", "-q", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "1", dst.String())
	m := pingRecv.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("ping %s from %s: %w\n%s", dst, ns, err, out)
	}
	if m[1] != m[2] || m[2] != strconv.Itoa(count) {
		return fmt.Errorf("ping %s from %s: %s of %s answered", dst, ns, m[2], m[1])
	}
	return nil
}

// MeasureConvergence measures, runs times, how long node 1's speaker needs
// from process start until every ToR has installed node 1's IPv4 pod CIDR.
// The procedure is the same for every speaker, so BIRD and podrouter can be
// compared side by side:
//
//  1. The speaker is killed with SIGKILL: no NOTIFICATION (a graceful stop
//     differs between speakers: BIRD sends a Cease, podrouter by default
//     exits for a graceful restart).
//  2. If the speaker had negotiated graceful restart, the ToRs keep its
//     routes as stale for 120 s, and `clear bgp <peer>` does not flush
//     them for a peer that is already down. So each ToR administratively
//     bounces only node 1's two sessions (`neighbor X shutdown` then
//     `no neighbor X shutdown`), which drops their routes, stale ones
//     included; other nodes are untouched. The run waits until the prefix
//     is gone from every ToR's RIB and until FRR has left Idle for those
//     sessions (it holds a bounced peer in Idle for ~1 s and refuses its
//     connections meanwhile; starting earlier would time that ToR
//     artefact, as a retry delay, instead of the speaker).
//  3. The clock starts just before the speaker is exec'd. One poller per
//     ToR runs `show ip route 10.0.1.0/24 json` every 20 ms until the route
//     is selected and installed; a run ends when the last ToR has it. The
//     figure includes process start-up, the speaker's first-connect delay,
//     session set-up, FRR's update processing and zebra's install. It is an
//     upper bound: a vtysh call takes ~80 ms on a busy 2-core machine, which
//     is the resolution.
func (l *Lab) MeasureConvergence(ctx context.Context, runs int) ([]time.Duration, error) {
	target := PodCIDRs(1)[0]
	var out []time.Duration
	for i := 0; i < runs; i++ {
		if err := l.StopSpeaker(ctx, 1, syscall.SIGKILL); err != nil {
			return out, err
		}
		if err := l.bounceNodeSessions(ctx, 1); err != nil {
			return out, err
		}
		if err := l.waitToRs(ctx, target, false, 30*time.Second); err != nil {
			return out, fmt.Errorf("run %d: withdraw: %w", i+1, err)
		}
		if err := l.waitNodeSessionsLeaveIdle(ctx, 1, 30*time.Second); err != nil {
			return out, fmt.Errorf("run %d: %w", i+1, err)
		}
		start := time.Now()
		if _, err := l.startSpeaker(1); err != nil {
			return out, err
		}
		if err := l.waitToRs(ctx, target, true, 60*time.Second); err != nil {
			return out, fmt.Errorf("run %d: converge: %w", i+1, err)
		}
		d := time.Since(start)
		l.log.Info("convergence", "run", i+1, "speaker", l.Spec.Speaker, "elapsed", d.Round(time.Millisecond))
		out = append(out, d)
	}
	return out, nil
}

// bounceNodeSessions administratively resets node n's sessions on every
// ToR, dropping their routes (stale ones too); the config ends unchanged.
func (l *Lab) bounceNodeSessions(ctx context.Context, n int) error {
	for k := 1; k <= l.Spec.ToRs; k++ {
		_, n4 := LinkV4(k, n)
		_, n6 := LinkV6(k, n)
		args := []string{"-N", l.ToRNS(k), "-c", "configure terminal", "-c", fmt.Sprintf("router bgp %d", ToRASN)}
		for _, p := range []netip.Addr{n4, n6} {
			args = append(args, "-c", "neighbor "+p.String()+" shutdown")
		}
		for _, p := range []netip.Addr{n4, n6} {
			args = append(args, "-c", "no neighbor "+p.String()+" shutdown")
		}
		if _, err := run(ctx, nil, "vtysh", args...); err != nil {
			return err
		}
	}
	return nil
}

// waitNodeSessionsLeaveIdle waits until every ToR's sessions to node n
// are past Idle (Active or Connect: ready to accept the speaker).
func (l *Lab) waitNodeSessionsLeaveIdle(ctx context.Context, n int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return poll(ctx, 50*time.Millisecond, func() (bool, string, error) {
		for k := 1; k <= l.Spec.ToRs; k++ {
			_, n4 := LinkV4(k, n)
			_, n6 := LinkV6(k, n)
			for _, f := range []Family{IPv4, IPv6} {
				ss, err := l.ToRSessions(ctx, k, f)
				if err != nil {
					return false, err.Error(), nil
				}
				for _, s := range ss {
					if (s.Peer == n4 || s.Peer == n6) && strings.HasPrefix(s.State, "Idle") {
						return false, fmt.Sprintf("tor%d session to %s is %s", k, s.Peer, s.State), nil
					}
				}
			}
		}
		return true, "", nil
	})
}

// waitToRs polls every ToR in parallel (every 20 ms) until each has (or,
// with present false, lacks) pfx installed from BGP.
func (l *Lab) waitToRs(ctx context.Context, pfx netip.Prefix, present bool, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	errs := make(chan error, l.Spec.ToRs)
	for k := 1; k <= l.Spec.ToRs; k++ {
		go func() {
			errs <- poll(ctx, 20*time.Millisecond, func() (bool, string, error) {
				has, err := l.hasToRRoute(ctx, k, pfx)
				if err != nil {
					return false, fmt.Sprintf("tor%d: %v", k, err), nil
				}
				return has == present, fmt.Sprintf("tor%d has %s: %v", k, pfx, has), nil
			})
		}()
	}
	var all []error
	for k := 1; k <= l.Spec.ToRs; k++ {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}
