package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"text/template"
	"time"
)

// FRR runs one instance per ToR namespace, in its own pathspace named like
// the namespace: sockets in /var/run/frr/NS, vtysh.conf in /etc/frr/NS.
const (
	frrDaemonDir = "/usr/lib/frr"
	frrRunDir    = "/var/run/frr"
	frrEtcDir    = "/etc/frr"
)

func frrIDs() (uid, gid int, err error) {
	if _, err := os.Stat(filepath.Join(frrDaemonDir, "bgpd")); err != nil {
		return 0, 0, fmt.Errorf("FRR is not installed (%s/bgpd: %w): run `make deps` (or apt-get install frr)", frrDaemonDir, err)
	}
	u, err := user.Lookup("frr")
	if err != nil {
		return 0, 0, fmt.Errorf("FRR's user frr: %w: reinstall FRR (apt-get install --reinstall frr) or run `make deps`", err)
	}
	uid, _ = strconv.Atoi(u.Uid) // numeric on Linux
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// startFRR renders ToR k's configs and starts zebra, bfdd (with
// Spec.BFD) and bgpd in its namespace. FRR daemonizes and returns once each
// daemon is up.
func (l *Lab) startFRR(ctx context.Context, k int) error {
	s := l.Spec
	ns := s.ToRNS(k)
	d := s.torData(k)
	uid, gid, err := frrIDs()
	if err != nil {
		return err
	}
	// The daemons drop to user frr before writing pid and log files.
	for _, dir := range []string{d.Dir, filepath.Join(frrRunDir, ns), filepath.Join(frrEtcDir, ns)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			return err
		}
	}
	vtyshConf := filepath.Join(frrEtcDir, ns, "vtysh.conf")
	if err := os.WriteFile(vtyshConf, []byte("! podrouter lab "+s.Name+"\n"), 0o640); err != nil {
		return err
	}
	if err := os.Chown(vtyshConf, uid, gid); err != nil {
		return err
	}
	daemons := []string{"zebra", "bgpd"}
	if s.BFD {
		daemons = []string{"zebra", "bfdd", "bgpd"}
	}
	tmpls := map[string]*template.Template{"zebra": zebraTmpl, "bfdd": bfddTmpl, "bgpd": bgpdTmpl}
	for _, daemon := range daemons {
		tmpl := tmpls[daemon]
		b, err := render(tmpl, d)
		if err != nil {
			return err
		}
		conf := filepath.Join(d.Dir, daemon+".conf")
		if err := os.WriteFile(conf, b, 0o640); err != nil {
			return err
		}
		if err := os.Chown(conf, uid, gid); err != nil {
			return err
		}
		argv := []string{filepath.Join(frrDaemonDir, daemon), "-N", ns, "-d", "-P", "0",
			"-f", conf, "-i", filepath.Join(d.Dir, daemon+".pid")}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		out, err := run(cctx, nil, "ip", append([]string{"netns", "exec", ns}, argv...)...)
		cancel()
		if err != nil {
			return fmt.Errorf("start %s in %s: %w %s\n%s", daemon, ns, err, out, tail(filepath.Join(d.Dir, daemon+".log"), 20))
		}
		l.log.Debug("frr daemon started", "tor", k, "daemon", daemon)
	}
	return nil
}

// Vtysh runs one vtysh command against ToR k's FRR.
func (l *Lab) Vtysh(ctx context.Context, tor int, cmd string) (string, error) {
	return run(ctx, nil, "vtysh", "-N", l.Spec.ToRNS(tor), "-c", cmd)
}

// VtyshJSON runs a vtysh command ending in "json" and decodes its output.
func (l *Lab) VtyshJSON(ctx context.Context, tor int, cmd string, v any) error {
	out, err := l.Vtysh(ctx, tor, cmd)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("vtysh %q on tor%d: %w: %.200s", cmd, tor, err, out)
	}
	return nil
}

// Session is one BGP session as the ToR sees it.
type Session struct {
	Peer  netip.Addr
	State string // "Established", "Active", ...
	// PfxRcd is the number of prefixes accepted from the peer.
	PfxRcd int
}

// ToRSessions returns ToR k's sessions with the nodes of one address
// family, by peer (the inter-ToR session is left out).
func (l *Lab) ToRSessions(ctx context.Context, tor int, f Family) ([]Session, error) {
	var sum map[string]struct {
		Peers map[string]struct {
			State  string `json:"state"`
			PfxRcd int    `json:"pfxRcd"`
		} `json:"peers"`
	}
	if err := l.VtyshJSON(ctx, tor, "show bgp summary json", &sum); err != nil {
		return nil, err
	}
	key := "ipv4Unicast"
	if f == IPv6 {
		key = "ipv6Unicast"
	}
	var out []Session
	for peer, p := range sum[key].Peers {
		a, err := netip.ParseAddr(peer)
		if err != nil {
			return nil, fmt.Errorf("tor%d summary: peer %q: %w", tor, peer, err)
		}
		if a == InterToRV4(3-tor) || a == InterToRV6(3-tor) {
			continue // the inter-ToR (spine) session, not a node
		}
		out = append(out, Session{Peer: a, State: p.State, PfxRcd: p.PfxRcd})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Peer.Less(out[j].Peer) })
	return out, nil
}

// ToRRoutes returns the BGP routes in ToR k's zebra RIB that are selected
// and installed in its kernel, for one family, sorted.
func (l *Lab) ToRRoutes(ctx context.Context, tor int, f Family) ([]netip.Prefix, error) {
	cmd := "show ip route bgp json"
	if f == IPv6 {
		cmd = "show ipv6 route bgp json"
	}
	var rib map[string][]struct {
		Protocol  string `json:"protocol"`
		Selected  bool   `json:"selected"`
		Installed bool   `json:"installed"`
	}
	if err := l.VtyshJSON(ctx, tor, cmd, &rib); err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for pfx, entries := range rib {
		for _, e := range entries {
			if e.Protocol == "bgp" && e.Selected && e.Installed {
				p, err := netip.ParsePrefix(pfx)
				if err != nil {
					return nil, fmt.Errorf("tor%d rib: %w", tor, err)
				}
				out = append(out, p)
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr().Less(out[j].Addr()) })
	return out, nil
}

// hasToRRoute reports whether ToR k's RIB has pfx from BGP, installed.
// It asks for the one prefix so that a poll stays cheap.
func (l *Lab) hasToRRoute(ctx context.Context, tor int, pfx netip.Prefix) (bool, error) {
	cmd := "show ip route " + pfx.String() + " json"
	if pfx.Addr().Is6() {
		cmd = "show ipv6 route " + pfx.String() + " json"
	}
	var rib map[string][]struct {
		Protocol  string `json:"protocol"`
		Selected  bool   `json:"selected"`
		Installed bool   `json:"installed"`
	}
	if err := l.VtyshJSON(ctx, tor, cmd, &rib); err != nil {
		return false, err
	}
	for _, e := range rib[pfx.String()] {
		if e.Protocol == "bgp" && e.Selected && e.Installed {
			return true, nil
		}
	}
	return false, nil
}

// removeFRRDirs removes the FRR pathspace directories of a ToR namespace.
func removeFRRDirs(ns string) error {
	return errors.Join(
		os.RemoveAll(filepath.Join(frrRunDir, ns)),
		os.RemoveAll(filepath.Join(frrEtcDir, ns)),
	)
}
