package datapath

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"syscall"
	"testing"
)

var (
	fuzzOnce sync.Once
	fuzzObjs *objects
	fuzzErr  error
)

// fuzzObjects loads both programs once per fuzz worker, with the same
// endpoints, node address and next hops as the BPF_PROG_RUN tests, so
// that random frames reach every path: local pod, remote via the next
// hop, to the stack, drop.
func fuzzObjects(t *testing.T) *objects {
	requireRoot(t)
	fuzzOnce.Do(func() {
		objs, err := loadObjects(Config{}.withDefaults(), loadOpts{ttlDec: 1})
		if err != nil {
			fuzzErr = err
			return
		}
		fuzzErr = errors.Join(fillTestMaps(objs), syncNextHops(objs.ep.PrNexthops, nextHopSlots(testNextHops())))
		fuzzObjs = objs
	})
	if fuzzErr != nil {
		t.Fatal(fuzzErr)
	}
	return fuzzObjs
}

func totalPackets(t *testing.T, o *objects) uint64 {
	cs, err := readCounters(o.ep.PrCounters)
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range cs {
		n += c.Packets
	}
	return n
}

// FuzzPrograms runs random frames through from-endpoint and from-network
// with BPF_PROG_RUN. Whatever the frame: the verdict is pass, drop or
// redirect; a passed frame reaches the stack unmodified; a redirected one
// keeps its length, and if IPv4 keeps a valid header checksum valid and
// has a TTL one lower; every frame is counted under exactly one reason.
func FuzzPrograms(f *testing.F) {
	udp := frame(macHostA, macPodA, podA4, remote4, protoUDP, l4(podA4, remote4, protoUDP, 1234, 53, 0, []byte("x")), frameOpts{})
	f.Add(false, udp)
	f.Add(false, frame(macHostA, macPodA, podA4, podB4, protoTCP, tcpSeg(podA4, podB4, 40000, 80, 0x02, 1, 0, 64240), frameOpts{}))
	f.Add(false, frame(macHostA, macPodA, podA6, podB6, protoICMPv6, l4(podA6, podB6, protoICMPv6, 128, 77, 0, []byte("ping")), frameOpts{}))
	f.Add(false, frame(macHostA, macPodA, podA4, node4, protoUDP, l4(podA4, node4, protoUDP, 1, 2, 0, nil), frameOpts{}))
	f.Add(false, arpFrame())
	f.Add(true, frame(macUp, macToR, remote4, podA4, protoUDP, l4(remote4, podA4, protoUDP, 53, 1234, 0, []byte("x")), frameOpts{ttl: 62}))
	f.Add(true, frame(macUp, macToR, remote6, podB6, protoICMPv6, l4(remote6, podB6, protoICMPv6, 128, 9, 0, nil), frameOpts{}))
	f.Add(true, frame(macUp, macToR, remote4, podA4, protoTCP, tcpSeg(remote4, podA4, 80, 40000, 0x12, 1, 2, 64240), frameOpts{options: []byte{1, 1, 1, 0}}))
	f.Fuzz(func(t *testing.T, fromNetwork bool, in []byte) {
		o := fuzzObjects(t)
		prog := o.ep.FromEndpoint
		if fromNetwork {
			prog = o.net.FromNetwork
		}
		before := totalPackets(t, o)
		ret, out, err := prog.Test(append([]byte{}, in...))
		if err != nil {
			// The kernel refuses frames shorter than an Ethernet header
			// and IP frames whose header is cut short before the program
			// runs: not the program's business.
			if errors.Is(err, syscall.EINVAL) {
				return
			}
			t.Fatalf("prog run: %v", err)
		}
		switch ret {
		case actOK:
			if !bytes.Equal(out, in) {
				t.Fatalf("frame passed to the stack was modified:\n in % x\nout % x", in, out)
			}
		case actShot:
		case actRedirect:
			if len(out) != len(in) {
				t.Fatalf("redirected frame changed length %d -> %d", len(in), len(out))
			}
			if binary.BigEndian.Uint16(out[12:14]) == 0x0800 && len(out) >= 34 {
				ihl := int(out[14]&0x0f) * 4
				if ihl < 20 || len(out) < 14+ihl {
					t.Fatalf("redirected IPv4 frame with header length %d", ihl)
				}
				// The program updates the checksum incrementally and does
				// not verify it (tc runs before ip_rcv): a frame that came
				// in with a bad checksum leaves with one (the next IP stack
				// drops it, as the kernel path would have here). A good one
				// must stay good.
				if csumFold(csumAdd(0, in[14:14+ihl])) == 0 && csumFold(csumAdd(0, out[14:14+ihl])) != 0 {
					t.Fatalf("redirected IPv4 header checksum broken: % x -> % x", in[14:14+ihl], out[14:14+ihl])
				}
				if out[14+8] != in[14+8]-1 {
					t.Fatalf("TTL %d -> %d, want one lower", in[14+8], out[14+8])
				}
			}
		default:
			t.Fatalf("verdict %d", ret)
		}
		if got := totalPackets(t, o) - before; got != 1 {
			t.Fatalf("counters moved by %d for one frame", got)
		}
	})
}
