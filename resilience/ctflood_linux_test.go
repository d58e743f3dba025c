package resilience

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podrouter/podrouter/lab"
)

func csum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// synPacket is an IPv4 TCP SYN from src:sport to dst:dport.
func synPacket(src, dst netip.Addr, sport, dport uint16, seq uint32) []byte {
	p := make([]byte, 40)
	p[0], p[8], p[9] = 0x45, 64, syscall.IPPROTO_TCP
	binary.BigEndian.PutUint16(p[2:], 40)
	s4, d4 := src.As4(), dst.As4()
	copy(p[12:], s4[:])
	copy(p[16:], d4[:])
	binary.BigEndian.PutUint16(p[10:], csum(p[:20]))
	tcp := p[20:]
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	tcp[12], tcp[13] = 5<<4, 0x02
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	ph := append(append(append([]byte{}, s4[:]...), d4[:]...), 0, syscall.IPPROTO_TCP, 0, 20)
	binary.BigEndian.PutUint16(tcp[16:], csum(append(ph, tcp...)))
	return p
}

// Test 12: conntrack flood. node1's TCP conntrack sized to 65,536; 100
// established flows from a pod of node1 to one of node2 exchange a message
// every 100 ms while node1's other pod sends spoofed-source SYNs (sources
// in node1's pod CIDR, random ports) at 10 x capacity per minute. Printed:
// established flows broken (target 0), the map pressure peak, the share of
// new legitimate connections that succeed (target ≥ 99 %), and the
// pressure after GC (target < 0.1).
func TestConntrackFlood(t *testing.T) {
	requireLab(t)
	const capacity = 65536
	l := upLab(t, lab.Spec{ToRs: 1, Nodes: 2, PodsPerNode: 2, Datapath: true})
	conf := edit(t, labConfig(t, l, 1), "  enabled: true\n", "  enabled: true\n  ctSizeTCP: 65536\n")
	startDaemon(t, l, 1, conf)
	waitFor(t, "node1 up with the small CT", 60*time.Second, func() (bool, string) {
		if ok, why := established(l, 1, 2); !ok {
			return false, why
		}
		return hooksOK(l, 1)
	})
	ctx := context.Background()
	dur := size(15*time.Second, 60*time.Second)
	rate := 10 * capacity / 60 // SYNs per second: 10 x capacity per minute
	st := startStreams(t, l, 100, 7101)
	dst, _ := l.PodIP(ctx, 2, 1, lab.IPv4)
	// Legitimate new connections during the flood, every 50 ms.
	var tries, oks atomic.Int64
	stopNew := every(50*time.Millisecond, func() {
		tries.Add(1)
		_ = inNS(l.PodNS(1, 1), func() error {
			c, err := net.DialTimeout("tcp4", net.JoinHostPort(dst.String(), "7101"), time.Second)
			if err == nil {
				oks.Add(1)
				c.Close()
			}
			return nil
		})
	})
	// Pressure sampler.
	var peak atomic.Uint64
	stopP := every(500*time.Millisecond, func() {
		if v, err := metricMax(l, 1, "podrouter_datapath_map_pressure_ratio"); err == nil && uint64(v*1e6) > peak.Load() {
			peak.Store(uint64(v * 1e6))
		}
	})
	// The flood from pod (1,2): a raw socket in its namespace.
	var sent int64
	err := inNS(l.PodNS(1, 2), func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		d4 := dst.As4()
		sa := &unix.SockaddrInet4{Addr: d4}
		rng := rand.New(rand.NewPCG(1, 2))
		start := time.Now()
		for time.Since(start) < dur {
			// Pace in 10 ms batches.
			due := int64(time.Since(start).Seconds() * float64(rate))
			for sent < due {
				src := netip.AddrFrom4([4]byte{10, 0, 1, byte(2 + rng.IntN(250))})
				pkt := synPacket(src, dst, uint16(1024+rng.IntN(64000)), 80, rng.Uint32())
				if err := unix.Sendto(fd, pkt, 0, sa); err != nil && err != unix.ENOBUFS {
					return err
				}
				sent++
			}
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	stopNew()
	time.Sleep(time.Second)
	stopP()
	st.Stop()
	// Pressure after GC: SYN-only entries live 60 s, GC runs every 30 s.
	var after float64
	gcWait := poll(150*time.Second, time.Second, func() bool {
		v, err := metricMax(l, 1, "podrouter_datapath_map_pressure_ratio")
		after = v
		return err == nil && v < 0.1
	})
	newPct := 100 * float64(oks.Load()) / float64(max(tries.Load(), 1))
	report(t, "12 conntrack flood", st.cut.Load() == 0 && newPct >= 99 && after < 0.1,
		"%d spoofed SYNs in %s (%.1f x the 65,536-entry map): established flows broken %d/100, pressure peak %.2f, new connections ok %.1f%% (%d/%d), pressure after GC %.3f (after %s) … target 0, ≥ 99 %%, < 0.1",
		sent, dur, float64(sent)/capacity, st.cut.Load(), float64(peak.Load())/1e6, newPct, oks.Load(), tries.Load(), after, dur2(gcWait))
}

func dur2(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.Round(time.Second).String()
}
