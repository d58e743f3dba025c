package resilience

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podrouter/podrouter/bgp/bgptest"
	"github.com/podrouter/podrouter/health"
	"github.com/podrouter/podrouter/lab"
)

// The secure lab: one ToR, two nodes, one pod each; every session with
// TCP-MD5 and GTSM (ttlMin 255), as the shipped DaemonSet runs them.
var secure onceLab

const labPassword = "resilience1"

func secureLab(t *testing.T) *lab.Lab {
	t.Helper()
	spec := lab.Spec{Name: fmt.Sprintf("rm%03d", time.Now().Nanosecond()%1000), ToRs: 1, Nodes: 2, PodsPerNode: 1,
		Password: labPassword, GTSM: true}
	return secure.get(t, "secure lab", spec, nil)
}

// ttlControl sets the IP TTL / hop limit of a socket before connect.
func ttlControl(ttl int) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if strings.HasSuffix(network, "6") {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, ttl)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, ttl)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// connects reports whether a TCP handshake from namespace ns to dst
// completes within 2 s, sending with the given TTL.
func connects(ns string, dst netip.AddrPort, ttl int) bool {
	ok := false
	_ = inNS(ns, func() error {
		d := net.Dialer{Timeout: 2 * time.Second, Control: ttlControl(ttl)}
		c, err := d.Dial("tcp", dst.String())
		if err == nil {
			ok = true
			c.Close()
		}
		return nil
	})
	return ok
}

// httpStatus GETs url from namespace ns; 0 when it cannot connect.
func httpStatus(ns, url string) int {
	code := 0
	_ = inNS(ns, func() error {
		c := http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			code = resp.StatusCode
		}
		return nil
	})
	return code
}

// Test 11: exposure. node1 runs as the DaemonSet does (listenPort 179,
// ttlMin 255, TCP-MD5); from its pod and from the ToR on its link, every
// port and socket of the node is tried. Only what the config makes public
// may answer: the metrics listener on the uplink address
// (metrics.allowNonLoopback) and BGP for the configured ToR with the
// password and TTL 255 (FRR's own session).
func TestExposure(t *testing.T) {
	l := secureLab(t)
	conf := edit(t, labConfig(t, l, 1), "listenPort: -1", "listenPort: 179")
	startDaemon(t, l, 1, conf)
	waitFor(t, "node1 sessions up with a listener", 60*time.Second, func() (bool, string) { return established(l, 1, 2) })
	uplink := lab.LinkAddrNode(1, 1)
	rid := lab.NodeRouterID(1)
	pod := l.PodNS(1, 1)
	tor := l.ToRNS(1)
	ap := func(a netip.Addr, p uint16) netip.AddrPort { return netip.AddrPortFrom(a, p) }
	type probe struct {
		what   string
		ns     string
		dst    netip.AddrPort
		ttl    int
		public bool
	}
	probes := []probe{
		{"pod -> BGP on the uplink address", pod, ap(uplink, 179), 64, false},
		{"pod -> BGP on the uplink address, TTL 255", pod, ap(uplink, 179), 255, false},
		{"pod -> BGP on the router ID (lo)", pod, ap(rid, 179), 255, false},
		{"ToR link, no MD5, TTL 64 -> BGP", tor, ap(uplink, 179), 64, false},
		{"ToR link, no MD5, TTL 255 -> BGP", tor, ap(uplink, 179), 255, false},
		{"pod -> gRPC API port on the uplink", pod, ap(uplink, 50051), 64, false},
		{"ToR link -> gRPC API port on the uplink", tor, ap(uplink, 50051), 64, false},
		{"pod -> metrics (public by config)", pod, ap(uplink, 9842), 64, true},
		{"ToR link -> metrics (public by config)", tor, ap(uplink, 9842), 64, true},
	}
	unexpected := 0
	var bad []string
	for _, p := range probes {
		got := connects(p.ns, p.dst, p.ttl)
		t.Logf("%-45s %s ttl %d: connected=%v (public %v)", p.what, p.dst, p.ttl, got, p.public)
		if got != p.public {
			unexpected++
			bad = append(bad, p.what)
		}
	}
	// pprof and other debug handlers must not exist on the public listener.
	for _, path := range []string{"/debug/pprof/", "/debug/vars"} {
		if code := httpStatus(pod, "http://"+ap(uplink, 9842).String()+path); code != http.StatusNotFound {
			unexpected++
			bad = append(bad, fmt.Sprintf("GET %s -> %d", path, code))
		}
	}
	// Unix sockets: owner-only; a non-root process cannot use them.
	sock := socketPath(l, 1)
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm()&0o077 != 0 {
		unexpected++
		bad = append(bad, fmt.Sprintf("local API socket mode %v (%v)", fi.Mode().Perm(), err))
	}
	out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", podrouterBin, "status", "--socket", sock).CombinedOutput()
	if err == nil {
		unexpected++
		bad = append(bad, "uid 65534 read the local API")
	}
	t.Logf("local API as uid 65534: %v %s", err, strings.TrimSpace(string(out)))
	// Listeners: exactly the configured ones.
	ss := nodeExec(t, l, 1, "ss", "-Hltnup")
	want := map[string]bool{"0.0.0.0:179": true, "[::]:179": true, "127.0.0.1:50051": true, uplink.String() + ":9842": true}
	listeners := 0
	for _, line := range strings.Split(strings.TrimSpace(ss), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		listeners++
		if !want[f[4]] {
			unexpected++
			bad = append(bad, "listener "+f[0]+" "+f[4])
		}
	}
	report(t, "11 exposure", unexpected == 0,
		"%d probes from a pod and the ToR link + debug paths + unix socket + %d listeners: %d beyond the config%s … target 0",
		len(probes), listeners, unexpected, missList(bad))
}

// md5Control sets a TCP-MD5 key for peer and the TTL on an IPv4 socket.
func md5Control(peer netip.Addr, password string, ttl int) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			sig := unix.TCPMD5Sig{Keylen: uint16(len(password))}
			copy(sig.Key[:], password)
			sa := (*unix.RawSockaddrInet4)(unsafePointer(&sig.Addr))
			sa.Family = unix.AF_INET
			sa.Addr = peer.As4()
			serr = unix.SetsockoptTCPMD5Sig(int(fd), unix.IPPROTO_TCP, unix.TCP_MD5SIG, &sig)
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, ttl)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// Test 10: TCP-MD5 and GTSM. A wrong or missing password never
// establishes and shows in status; a speaker two hops away (node2's
// namespace, behind the ToR) with the right ASN and password, sending at
// TTL 255, is refused under ttlMin 255; a rotated password re-establishes.
func TestMD5AndGTSM(t *testing.T) {
	l := secureLab(t)
	ctx := context.Background()
	const watch = 15 * time.Second
	base := labConfig(t, l, 1)
	pwFile := l.Spec.PasswordFile(1)
	results := []string{}
	pass := true
	neverUp := func(what, conf string) {
		d := startDaemon(t, l, 1, conf)
		deadline := time.Now().Add(watch)
		up := false
		for time.Now().Before(deadline) {
			if ok, _ := established(l, 1, 1); ok {
				up = true
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		st, _ := nodeStatus(l, 1)
		human, _ := l.Exec(ctx, l.NodeNS(1), podrouterBin, "status", "--socket", socketPath(l, 1))
		visible := len(st.Peers) > 0 && st.Peers[0].State != health.SessionEstablished && strings.Contains(human, "Warnings")
		t.Logf("%s: established=%v, status:\n%s", what, up, human)
		results = append(results, fmt.Sprintf("%s: established %v, visible %v", what, up, visible))
		pass = pass && !up && visible
		d.stop(syscall.SIGTERM)
	}
	wrong := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrong, []byte("not-the-password\n"), 0o600)
	neverUp("wrong password", strings.ReplaceAll(base, pwFile, wrong))
	neverUp("no password", strings.ReplaceAll(base, ", passwordFile: "+pwFile, ""))

	// Two hops away: node1 listens (as the DaemonSet does) and has
	// node2's uplink address as an extra peer (ASN 65002, the right
	// password, ttlMin 255). A hostile speaker in node2's namespace, behind
	// the ToR, connects with the key at TTL 255 (254 on arrival) and
	// tries the whole handshake.
	far := lab.LinkAddrNode(1, 2)
	conf := edit(t, edit(t, base, "listenPort: -1", "listenPort: 179"), "  peers:\n",
		fmt.Sprintf("  peers:\n    - {address: %s, asn: 65002, connectRetry: 1s, passwordFile: %s, ttlMin: 255}\n", far, pwFile))
	d := startDaemon(t, l, 1, conf)
	waitFor(t, "node1's ToR sessions", 60*time.Second, func() (bool, string) { return established(l, 1, 2) })
	tries, handshakes, sessions := 0, 0, 0
	for deadline := time.Now().Add(watch); time.Now().Before(deadline); {
		tries++
		var c net.Conn
		_ = inNS(l.NodeNS(2), func() error {
			dl := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: far.AsSlice()}, Control: md5Control(lab.LinkAddrNode(1, 1), labPassword, 255)}
			var err error
			c, err = dl.Dial("tcp4", netip.AddrPortFrom(lab.LinkAddrNode(1, 1), 179).String())
			return err
		})
		if c == nil {
			time.Sleep(500 * time.Millisecond)
			continue
		}
		handshakes++
		time.Sleep(200 * time.Millisecond)
		hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		if p, err := bgptest.Handshake(hctx, c, bgptest.Config{ASN: 65002, RouterID: netip.MustParseAddr("192.168.255.2")}); err == nil {
			sessions++
			p.Close()
		}
		cancel()
		c.Close()
	}
	results = append(results, fmt.Sprintf("speaker two hops away: %d tries, %d TCP handshakes, %d BGP sessions", tries, handshakes, sessions))
	pass = pass && sessions == 0 && handshakes == 0
	d.stop(syscall.SIGTERM)

	// Rotation: a new password at the ToR and in the node's file.
	newPW := "rotated2"
	rot := func(pw string) {
		vtyshConf(t, l, 1, fmt.Sprintf("router bgp %d", lab.ToRASN), "neighbor NODES4 password "+pw, "neighbor NODES6 password "+pw)
		if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rot(newPW)
	d2 := startDaemon(t, l, 1, base)
	back := waitFor(t, "sessions with the rotated password", 60*time.Second, func() (bool, string) { return established(l, 1, 2) })
	d2.stop(syscall.SIGTERM)
	rot(labPassword) // the lab's own speaker comes back with the lab's password
	results = append(results, fmt.Sprintf("rotated password: re-established in %s", back.Round(100*time.Millisecond)))
	report(t, "10 MD5 and GTSM", pass, "%s … target never up and visible; 0 TCP handshakes and 0 sessions two hops away; rotation re-establishes", strings.Join(results, "; "))
}

// dialTTL connects to dst:179 with the given TTL.
func dialTTL(dst netip.Addr, ttl int) (net.Conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second, Control: ttlControl(ttl)}
	return d.Dial("tcp", netip.AddrPortFrom(dst, 179).String())
}
