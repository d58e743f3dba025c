package datapath

import (
	"net/netip"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/podrouter/podrouter/health"
)

// TestPinnedUsageAndFlush: entry counts and filtered deletion through the
// pins, as `podrouter status` and `podrouter bpf ct flush` use them.
func TestPinnedUsageAndFlush(t *testing.T) {
	requireRoot(t)
	bpffs := t.TempDir()
	if err := unix.Mount("bpf", bpffs, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(bpffs, unix.MNT_DETACH) })
	pinDir := filepath.Join(bpffs, "podrouter")
	cfg := Config{PinDir: pinDir, CTSizeTCP: 4096, CTSizeOther: 2048}.withDefaults()
	objs, err := loadObjects(cfg, loadOpts{pinDir: pinDir, ttlDec: 1})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer objs.Close()

	// 1500 TCP flows from podA4 (more than one batch), 3 ICMP flows.
	put := func(proto uint8, src, dst netip.Addr, sport, dport uint16) {
		t.Helper()
		a, fam := addrWords(src)
		b, _ := addrWords(dst)
		k := ctKey{AddrA: a, AddrB: b, PortA: ntohs(sport), PortB: ntohs(dport), Proto: proto, Family: fam}
		e := ctEntry{ExpiresNs: uint64(monotonicNow()) + 1e12, Flags: ctfOrigIsA}
		m := objs.ep.PrCtOther
		if proto == 6 {
			m = objs.ep.PrCtTcp
		}
		if err := m.Put(&k, &e); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 1500 {
		put(6, podA4, remote4, uint16(10000+i), 80)
	}
	put(1, podA4, remote4, 7, 7)
	put(1, podB4, remote4, 8, 8)
	put(58, podA6, remote6, 9, 9)

	p, err := OpenPinned(pinDir)
	if err != nil {
		t.Fatal(err)
	}
	us, err := p.Usage()
	p.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := []health.MapUsage{{Map: "ct_tcp", Entries: 1500, Capacity: 4096}, {Map: "ct_other", Entries: 3, Capacity: 2048}, {Map: "endpoints", Capacity: us[2].Capacity}}
	if len(us) != 3 || us[0] != want[0] || us[1] != want[1] || us[2] != want[2] || us[2].Capacity == 0 {
		t.Errorf("usage %+v, want %+v", us, want)
	}

	n, err := FlushConntrack(pinDir, func(e CTEntry) bool { return e.Src.Addr() == podA4 && e.Proto == 1 })
	if err != nil || n != 1 {
		t.Errorf("flush podA4 icmp: %d deleted, %v; want 1", n, err)
	}
	n, err = FlushConntrack(pinDir, func(e CTEntry) bool { return e.Dst.Port() == 80 })
	if err != nil || n != 1500 {
		t.Errorf("flush port 80: %d deleted, %v; want 1500", n, err)
	}
	left, err := readConntrack(objs.ep.PrCtTcp, objs.ep.PrCtOther)
	if err != nil || len(left) != 2 {
		t.Errorf("after filtered flushes: %+v, %v; want podB4's and podA6's ICMP entries", left, err)
	}
	if n, err := FlushConntrack(pinDir, nil); err != nil || n != 2 {
		t.Errorf("flush all: %d deleted, %v; want 2", n, err)
	}
	if _, err := FlushConntrack(t.TempDir(), nil); err == nil {
		t.Error("flush on a dir that is not bpffs: no error")
	}
}
