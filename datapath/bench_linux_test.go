package datapath

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Per-packet cost with BPF_PROG_RUN. "ns/op" is the kernel-measured time
// per program run (test-run overhead included; compare with the Noop
// benchmarks to subtract it). Repeat benchmarks reuse one packet, so the
// programs are loaded with cfg_ttl_dec = 0 (the TTL arithmetic and
// checksum update still run, they just write the same value back).

func noopProg(b *testing.B) *ebpf.Program {
	requireRoot(b)
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SchedCLS,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		License:      "MIT",
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

func benchUDP() []byte {
	return frame(macHostA, macPodA, podA4, remote4, protoUDP, l4(podA4, remote4, protoUDP, 1000, 53, 0, make([]byte, 18)), frameOpts{})
}

// benchRepeat runs one packet b.N times in a single BPF_PROG_RUN.
func benchRepeat(b *testing.B, prog *ebpf.Program, in []byte, want uint32) {
	ret, d, err := prog.Benchmark(in, b.N, b.ResetTimer)
	if err != nil {
		b.Fatal(err)
	}
	if ret != want {
		b.Fatalf("verdict %d, want %d", ret, want)
	}
	b.ReportMetric(float64(d.Nanoseconds()), "ns/op")
}

// benchFresh runs b.N distinct flows, one BPF_PROG_RUN each, and reports
// the kernel-measured time per run (syscall cost excluded).
func benchFresh(b *testing.B, prog *ebpf.Program, in []byte, want uint32) {
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		binary.BigEndian.PutUint32(in[14+20:], uint32(i)+1<<20) // new sport+dport
		ret, d, err := prog.Benchmark(in, 1, nil)
		if err != nil {
			b.Fatal(err)
		}
		if ret != want {
			b.Fatalf("verdict %d, want %d", ret, want)
		}
		total += d
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
}

func BenchmarkNoop(b *testing.B) {
	benchRepeat(b, noopProg(b), benchUDP(), 0)
}

func BenchmarkNoopSingle(b *testing.B) {
	benchFresh(b, noopProg(b), benchUDP(), 0)
}

// CT hit + cached next hop + MAC rewrite + bpf_redirect.
func BenchmarkFromEndpointCTHit(b *testing.B) {
	f := newFixture(b, Config{}, loadOpts{ttlDec: 0})
	f.setNextHops(true)
	in := benchUDP()
	f.run(f.objs.ep.FromEndpoint, in) // create the entry
	benchRepeat(b, f.objs.ep.FromEndpoint, in, actRedirect)
}

// CT hit on a local pod: bpf_redirect_peer.
func BenchmarkFromEndpointLocalCTHit(b *testing.B) {
	f := newFixture(b, Config{}, loadOpts{ttlDec: 0})
	in := frame(macHostA, macPodA, podA4, podB4, protoUDP, l4(podA4, podB4, protoUDP, 1000, 53, 0, make([]byte, 18)), frameOpts{})
	f.run(f.objs.ep.FromEndpoint, in)
	benchRepeat(b, f.objs.ep.FromEndpoint, in, actRedirect)
}

// Uplink -> local pod, CT hit.
func BenchmarkFromNetworkCTHit(b *testing.B) {
	f := newFixture(b, Config{}, loadOpts{ttlDec: 0})
	in := frame(macUp, macToR, remote4, podA4, protoUDP, l4(remote4, podA4, protoUDP, 53, 1000, 0, make([]byte, 18)), frameOpts{})
	f.run(f.objs.net.FromNetwork, in)
	benchRepeat(b, f.objs.net.FromNetwork, in, actRedirect)
}

// Repeat run with a CT hit, single-run method: comparable with the miss benchmarks.
func BenchmarkFromEndpointCTHitSingle(b *testing.B) {
	f := newFixture(b, Config{}, loadOpts{ttlDec: 0})
	f.setNextHops(true)
	in := benchUDP()
	f.run(f.objs.ep.FromEndpoint, in)
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		_, d, err := f.objs.ep.FromEndpoint.Benchmark(in, 1, nil)
		if err != nil {
			b.Fatal(err)
		}
		total += d
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
}

// Every packet a new flow; the map never fills.
func BenchmarkFromEndpointCTMissCreate(b *testing.B) {
	f := newFixture(b, Config{CTSizeOther: 1 << 19}, loadOpts{ttlDec: 0})
	f.setNextHops(true)
	benchFresh(b, f.objs.ep.FromEndpoint, benchUDP(), actRedirect)
}

// Every packet a new flow into a full LRU: each create evicts.
func BenchmarkFromEndpointCTMissLRUFull(b *testing.B) {
	const size = 4096
	f := newFixture(b, Config{CTSizeOther: size}, loadOpts{ttlDec: 0})
	f.setNextHops(true)
	in := benchUDP()
	for i := range 4 * size {
		binary.BigEndian.PutUint32(in[14+20:], uint32(i)+1<<31)
		f.run(f.objs.ep.FromEndpoint, in)
	}
	benchFresh(b, f.objs.ep.FromEndpoint, in, actRedirect)
}
