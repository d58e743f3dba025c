package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/podrouter/podrouter/lab"
)

// Probes for the Kubernetes Service tests. Every client socket is made
// inside the client's namespace (lab.DialIn), so it is that pod's (or
// node's, or ToR's) own connection; the lab backend answers every request
// with its name and the client address it saw.

// answer is one reply of the lab backend.
type answer struct {
	backend string
	client  netip.AddrPort
}

// probeTimeout bounds each request of a probe.
const probeTimeout = 1500 * time.Millisecond

// parseAnswer reads "<name> <client ip:port> <payload>".
func parseAnswer(line, payload string) (answer, error) {
	f := strings.SplitN(strings.TrimRight(line, "\n"), " ", 3)
	if len(f) != 3 || f[2] != payload {
		return answer{}, fmt.Errorf("unexpected answer %q to %q", line, payload)
	}
	ap, err := netip.ParseAddrPort(f[1])
	if err != nil {
		return answer{}, fmt.Errorf("answer %q: client address: %w", line, err)
	}
	return answer{backend: f[0], client: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}, nil
}

// echoConn is one connection (TCP) or connected socket (UDP) to an echo
// port.
type echoConn struct {
	c    net.Conn
	r    *bufio.Reader
	udp  bool
	seq  int
	what string
}

func dialEcho(ctx context.Context, ns, network string, dst netip.AddrPort) (*echoConn, error) {
	dctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	c, err := lab.DialIn(dctx, ns, network, dst.String())
	if err != nil {
		return nil, fmt.Errorf("%s %s -> %s: %w", network, ns, dst, err)
	}
	return &echoConn{c: c, r: bufio.NewReader(c), udp: network == "udp", what: fmt.Sprintf("%s %s -> %s", network, ns, dst)}, nil
}

// roundTrip sends one request and reads its answer.
func (e *echoConn) roundTrip() (answer, error) {
	e.seq++
	payload := fmt.Sprintf("probe-%d", e.seq)
	_ = e.c.SetDeadline(time.Now().Add(probeTimeout)) // a failed deadline shows as the read error
	var line string
	if e.udp {
		if _, err := e.c.Write([]byte(payload)); err != nil {
			return answer{}, fmt.Errorf("%s: %w", e.what, err)
		}
		b := make([]byte, 512)
		n, err := e.c.Read(b)
		if err != nil {
			return answer{}, fmt.Errorf("%s: request %d: %w", e.what, e.seq, err)
		}
		line = string(b[:n])
	} else {
		if _, err := fmt.Fprintf(e.c, "%s\n", payload); err != nil {
			return answer{}, fmt.Errorf("%s: %w", e.what, err)
		}
		l, err := e.r.ReadString('\n')
		if err != nil {
			return answer{}, fmt.Errorf("%s: request %d: %w", e.what, e.seq, err)
		}
		line = l
	}
	a, err := parseAnswer(line, payload)
	if err != nil {
		return a, fmt.Errorf("%s: %w", e.what, err)
	}
	return a, nil
}

func (e *echoConn) Close() error { return e.c.Close() }

// probe opens conns connections (TCP) or connected sockets (UDP) from ns
// to dst, one after the other, and makes rounds requests on each. Every
// answer must come from a backend in want (any when empty), and on one
// connection always from the same one. It returns the answers.
func probe(ctx context.Context, ns, network string, dst netip.AddrPort, conns, rounds int, want ...string) ([]answer, error) {
	var out []answer
	for range conns {
		e, err := dialEcho(ctx, ns, network, dst)
		if err != nil {
			return out, err
		}
		first := ""
		for range rounds {
			a, err := e.roundTrip()
			if err != nil {
				e.Close()
				return out, err
			}
			if len(want) > 0 && !contains(want, a.backend) {
				e.Close()
				return out, fmt.Errorf("%s: answered by %s, want one of %v", e.what, a.backend, want)
			}
			if first == "" {
				first = a.backend
			} else if a.backend != first {
				e.Close()
				return out, fmt.Errorf("%s: one connection answered by %s, then %s", e.what, first, a.backend)
			}
			out = append(out, a)
		}
		e.Close()
	}
	return out, nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// digRepeat resolves name count times with dig in ns (the pod's resolver
// configuration: /etc/netns/<ns>/resolv.conf, as a kubelet writes it) and
// returns how many queries answered want.
func digRepeat(ctx context.Context, l *lab.Lab, ns, name string, count int, want netip.Addr, dir string) (int, string, error) {
	rr := "A"
	if want.Is6() {
		rr = "AAAA"
	}
	batch := filepath.Join(dir, "queries-"+ns)
	var b strings.Builder
	for range count {
		fmt.Fprintf(&b, "%s %s\n", name, rr)
	}
	if err := os.WriteFile(batch, []byte(b.String()), 0o644); err != nil {
		return 0, "", err
	}
	out, err := l.Exec(ctx, ns, "dig", "+short", "+tries=1", "+timeout=1", "-f", batch)
	ok := 0
	for _, line := range strings.Split(out, "\n") {
		if a, perr := netip.ParseAddr(strings.TrimSpace(line)); perr == nil && a == want {
			ok++
		}
	}
	return ok, out, err
}
