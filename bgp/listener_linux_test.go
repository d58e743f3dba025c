package bgp

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func dialFrom(t *testing.T, src, dst netip.AddrPort, ttl int) bool {
	t.Helper()
	d := net.Dialer{Timeout: 300 * time.Millisecond, LocalAddr: net.TCPAddrFromAddrPort(src),
		Control: func(network, address string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) {
				if dst.Addr().Is6() {
					_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, ttl)
				} else {
					_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, ttl)
				}
			})
		}}
	c, err := d.Dial("tcp", dst.String())
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// TestListenerFilter: with the filter on a listener, only configured
// peers complete a handshake, and a peer with ttlMin only at that TTL.
func TestListenerFilter(t *testing.T) {
	lc := net.ListenConfig{}
	lc.SetMultipathTCP(false) // as GoBGP's listener
	for _, fam := range []struct {
		net, listen, peer, other, ttlPeer string
	}{
		{"tcp4", "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"},
		{"tcp6", "::1", "::1", "", ""},
	} {
		ln, err := lc.Listen(context.Background(), fam.net, net.JoinHostPort(fam.listen, "0"))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		port := int32(ln.Addr().(*net.TCPAddr).Port)
		dst := netip.MustParseAddrPort(net.JoinHostPort(fam.listen, strconv.Itoa(int(port))))
		ap := func(s string) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr(s), 0) }
		if !dialFrom(t, ap(fam.peer), dst, 64) {
			t.Fatalf("%s: no connection before the filter", fam.net)
		}
		peers := []PeerConfig{{Address: netip.MustParseAddr(fam.peer)}}
		if fam.ttlPeer != "" {
			peers = append(peers, PeerConfig{Address: netip.MustParseAddr(fam.ttlPeer), TTLMin: 255})
		}
		n, err := guardListeners(port, peers)
		if err != nil || n != 1 {
			t.Fatalf("%s: guarded %d listeners: %v", fam.net, n, err)
		}
		if !dialFrom(t, ap(fam.peer), dst, 64) {
			t.Errorf("%s: a configured peer cannot connect", fam.net)
		}
		if fam.other != "" && dialFrom(t, ap(fam.other), dst, 255) {
			t.Errorf("%s: an address that is no peer connected", fam.net)
		}
		if fam.ttlPeer != "" {
			if dialFrom(t, ap(fam.ttlPeer), dst, 64) {
				t.Errorf("%s: a ttlMin 255 peer connected at TTL 64", fam.net)
			}
			if !dialFrom(t, ap(fam.ttlPeer), dst, 255) {
				t.Errorf("%s: a ttlMin 255 peer cannot connect at TTL 255", fam.net)
			}
		}
		// No peers of the family: nothing gets in.
		if _, err := guardListeners(port, nil); err != nil {
			t.Fatal(err)
		}
		if dialFrom(t, ap(fam.peer), dst, 255) {
			t.Errorf("%s: connected with no peer configured", fam.net)
		}
	}
}
