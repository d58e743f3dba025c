package datapath

import (
	"encoding/binary"
	"errors"
	"net/netip"
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
		AttachType:   ebpf.AttachTCXIngress, // as the real programs (tail calls)
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

// newFlowWrapper returns a program that bumps the port word of the (reused)
// BPF_PROG_RUN packet and tail-calls into prog: every repeat is then a new
// flow with warm caches, the steady state of a connection storm. The wrapper
// and the tail call add a few ns (compare BenchmarkNoopNewFlow).
func newFlowWrapper(b *testing.B, prog *ebpf.Program) *ebpf.Program {
	b.Helper()
	pa, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.ProgramArray, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pa.Close() })
	if err := pa.Put(uint32(0), prog); err != nil {
		b.Fatal(err)
	}
	const skbData, skbDataEnd, portsOff = 76, 80, 14 + 20 // offsetof(struct __sk_buff, data/data_end)
	w, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:       ebpf.SchedCLS,
		AttachType: ebpf.AttachTCXIngress,
		License:    "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.LoadMem(asm.R2, asm.R1, skbData, asm.Word),
			asm.LoadMem(asm.R3, asm.R1, skbDataEnd, asm.Word),
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, portsOff+4),
			asm.JGT.Reg(asm.R4, asm.R3, "out"),
			asm.LoadMem(asm.R5, asm.R2, portsOff, asm.Word),
			asm.Add.Imm(asm.R5, 1),
			asm.StoreMem(asm.R2, portsOff, asm.R5, asm.Word),
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.LoadMapPtr(asm.R2, pa.FD()),
			asm.Mov.Imm(asm.R3, 0),
			asm.FnTailCall.Call(),
			asm.Mov.Imm(asm.R0, 2).WithSymbol("out"),
			asm.Return(),
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { w.Close() })
	return w
}

// Wrapper + tail call into a no-op: the overhead to subtract from *NewFlow.
func BenchmarkNoopNewFlow(b *testing.B) {
	benchRepeat(b, newFlowWrapper(b, noopProg(b)), benchUDP(), 0)
}

// Every packet a new flow, warm caches (repeat runs through newFlowWrapper),
// in chunks on fresh maps so that the LRU never fills.
func BenchmarkFromEndpointCTMissCreateNewFlow(b *testing.B) {
	benchNewFlows(b, loadOpts{ttlDec: 0}, benchUDP())
}

const newFlowChunk = 1 << 16

func benchNewFlows(b *testing.B, o loadOpts, in []byte) {
	var total time.Duration
	for done := 0; done < b.N; done += newFlowChunk {
		b.StopTimer()
		f := newFixture(b, Config{CTSizeTCP: 2 * newFlowChunk, CTSizeOther: 2 * newFlowChunk}, o)
		f.setNextHops(true)
		w := newFlowWrapper(b, f.objs.ep.FromEndpoint)
		b.StartTimer()
		ret, d, err := w.Benchmark(in, min(newFlowChunk, b.N-done), nil)
		if err != nil || ret != actRedirect {
			b.Fatalf("verdict %d, err %v", ret, err)
		}
		total += d * time.Duration(min(newFlowChunk, b.N-done))
		w.Close()
		f.objs.Close()
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
}

// Every packet a new flow into a full LRU (each create evicts), warm caches.
func BenchmarkFromEndpointCTMissLRUFullNewFlow(b *testing.B) {
	const size = 4096
	f := newFixture(b, Config{CTSizeOther: size}, loadOpts{ttlDec: 0})
	f.setNextHops(true)
	w := newFlowWrapper(b, f.objs.ep.FromEndpoint)
	in := benchUDP()
	binary.BigEndian.PutUint32(in[14+20:], 1<<31)
	if _, _, err := w.Benchmark(in, 4*size, nil); err != nil { // fill
		b.Fatal(err)
	}
	binary.BigEndian.PutUint32(in[14+20:], 1<<30) // flows not seen in the fill
	benchRepeat(b, w, in, actRedirect)
}

// --- Services (issue 9): what the nf_conntrack lookup and the always-on
// pass-prefix lookup cost. Compare side by side in one run:
//   go test -run '^$' -bench 'CTHit|NewFlow|KernelCT|Stack|Noop' -count 7 ./datapath/

// The conntrack miss path with the nf_conntrack lookup compiled out (what
// the programs did before): compare with BenchmarkFromEndpointCTMissCreateNewFlow.
func BenchmarkFromEndpointCTMissCreateNewFlowNoKernelCT(b *testing.B) {
	benchNewFlows(b, loadOpts{ttlDec: 0, noKernelCT: true}, benchUDP())
}

// The pass-prefix LPM lookup on the from-endpoint path to a remote pod (CT
// hit, cached next hop): compiled out, empty map (the default), two
// Service CIDRs that do not match.
func BenchmarkFromEndpointCTHitNoPassLookup(b *testing.B) {
	benchCTHitPass(b, loadOpts{noPassLookup: true}, nil)
}

func BenchmarkFromEndpointCTHitPassCIDRs(b *testing.B) {
	benchCTHitPass(b, loadOpts{}, []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("fd00:10:96::/112")})
}

func benchCTHitPass(b *testing.B, o loadOpts, pass []netip.Prefix) {
	f := newFixture(b, Config{}, o)
	f.setNextHops(true)
	if err := syncHash(f.objs.ep.PrPassPrefixes, lpmEntries(pass)); err != nil {
		b.Fatal(err)
	}
	in := benchUDP()
	f.run(f.objs.ep.FromEndpoint, in)
	benchRepeat(b, f.objs.ep.FromEndpoint, in, actRedirect)
}

// A hit on a stack-flagged entry: a Service reply arriving on the uplink
// from a remote backend goes to the stack without asking nf_conntrack.
func BenchmarkFromNetworkCTHitStack(b *testing.B) {
	ns := enterNetns(b)
	f := newFixture(b, Config{}, loadOpts{ttlDec: 0})
	nfInsert(b, ns, "udp", ap(podA4, 1000), ap(netip.MustParseAddr("10.96.0.10"), 53), "--dst-nat", natTo(ap(remote4, 53)))
	in := frame(macUp, macToR, remote4, podA4, protoUDP, l4(remote4, podA4, protoUDP, 53, 1000, 0, make([]byte, 18)), frameOpts{})
	if ret, _ := f.run(f.objs.net.FromNetwork, in); ret != actOK {
		b.Fatalf("first packet verdict %d, want to the stack", ret)
	}
	if e, ok := f.ct(ap(podA4, 1000), ap(remote4, 53)); !ok || !e.Stack {
		b.Fatalf("entry %+v found=%v, want stack", e, ok)
	}
	benchRepeat(b, f.objs.net.FromNetwork, in, actOK)
}

// Conntrack misses, one BPF_PROG_RUN per packet, the entry deleted before
// each run (outside the measured time) so that every run misses: the
// nf_conntrack lookup compiled out, finding nothing (a new pod flow), and
// finding a NATed entry (a Service's first reply: pass-nat). The packet is
// a UDP reply from local pod B to pod A.
func BenchmarkKernelCTMissOff(b *testing.B)   { benchKernelCTMiss(b, "off") }
func BenchmarkKernelCTMissNone(b *testing.B)  { benchKernelCTMiss(b, "none") }
func BenchmarkKernelCTMissNATed(b *testing.B) { benchKernelCTMiss(b, "nat") }

func benchKernelCTMiss(b *testing.B, kind string) {
	ns := enterNetns(b)
	f := newFixture(b, Config{}, loadOpts{ttlDec: 0, noKernelCT: kind == "off"})
	want := uint32(actRedirect)
	if kind == "nat" {
		nfInsert(b, ns, "udp", ap(podA4, 1000), ap(netip.MustParseAddr("10.96.0.10"), 53), "--dst-nat", natTo(ap(podB4, 53)))
		want = actOK
	}
	in := frame(macHostB, macPodB, podB4, podA4, protoUDP, l4(podB4, podA4, protoUDP, 53, 1000, 0, make([]byte, 18)), frameOpts{})
	f.run(f.objs.ep.FromEndpoint, in) // the entry, to learn its key
	var k ctKey
	var e ctEntry
	if !f.objs.ep.PrCtOther.Iterate().Next(&k, &e) {
		b.Fatal("no conntrack entry after the first packet")
	}
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if err := f.objs.ep.PrCtOther.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			b.Fatal(err)
		}
		b.StartTimer()
		ret, d, err := f.objs.ep.FromEndpoint.Benchmark(in, 1, nil)
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

// As BenchmarkFromEndpointCTMissCreateNewFlow with TCP SYNs: a
// connection's opening packet does not ask nf_conntrack.
func BenchmarkFromEndpointCTMissCreateNewFlowTCPSyn(b *testing.B) {
	benchNewFlows(b, loadOpts{ttlDec: 0}, frame(macHostA, macPodA, podA4, remote4, protoTCP, l4(podA4, remote4, protoTCP, 1000, 80, tcpSYN, nil), frameOpts{}))
}
