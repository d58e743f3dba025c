package bgp

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/net/bpf"
)

// The BGP listener accepts connections only from configured peers.
//
// GoBGP accepts every TCP connection on its port and drops the ones from
// unknown addresses only afterwards; GTSM (ttlMin) it applies per peer to
// the accepted socket. So any pod of the node, and anything that can route
// to it, completes a TCP handshake on port 179 of every node address. The
// speaker therefore attaches a classic BPF socket filter (SO_ATTACH_FILTER)
// to GoBGP's listening sockets: a segment is taken only if its source
// address is a configured peer's and, for a peer with ttlMin, if it
// arrived with at least that TTL (hop limit). Everything else is dropped
// in the kernel before a SYN-ACK is sent. The filter is rebuilt whenever
// the peer set changes (SetPeers, autoPeers, Kubernetes extra peers) and
// when the server restarts (SetIdentity). An accepted connection inherits
// the filter of its listener, which only ever passes its own peer.
//
// Why not the alternatives: IP_MINTTL on the listener would let a pod in
// (it is directly connected and may send with TTL 255) and would refuse
// multihop peers; binding to the uplink addresses does not help either
// (a pod reaches every node address).

// Offsets the kernel resolves relative to the network header for socket
// filters (linux/filter.h SKF_NET_OFF).
const skfNetOff = -0x100000

func netOff(off int) uint32 { return uint32(int32(skfNetOff + off)) }

// listenerFilter is the socket filter for a listener of one family: pass
// segments from the peers of that family (with their ttlMin), drop the rest.
func listenerFilter(v6 bool, peers []PeerConfig) ([]bpf.RawInstruction, error) {
	const accept, drop = 0xffffffff, 0
	var prog []bpf.Instruction
	ttl := func(min uint8) []bpf.Instruction {
		if min == 0 {
			return []bpf.Instruction{bpf.RetConstant{Val: accept}}
		}
		off := 8 // IPv4 TTL
		if v6 {
			off = 7 // IPv6 hop limit
		}
		return []bpf.Instruction{
			bpf.LoadAbsolute{Off: netOff(off), Size: 1},
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: uint32(min), SkipTrue: 0, SkipFalse: 1},
			bpf.RetConstant{Val: accept},
			bpf.RetConstant{Val: drop},
		}
	}
	for _, p := range peers {
		a := p.Address.Unmap()
		if a.Is6() != v6 {
			continue
		}
		tail := ttl(p.TTLMin)
		if !v6 {
			w := a.As4()
			prog = append(prog,
				bpf.LoadAbsolute{Off: netOff(12), Size: 4},
				bpf.JumpIf{Cond: bpf.JumpEqual, Val: binary.BigEndian.Uint32(w[:]), SkipFalse: uint8(len(tail))})
			prog = append(prog, tail...)
			continue
		}
		w := a.As16()
		// Four words of the source address; a mismatch skips to the next peer.
		for i := range 4 {
			skip := (3-i)*2 + len(tail)
			prog = append(prog,
				bpf.LoadAbsolute{Off: netOff(8 + 4*i), Size: 4},
				bpf.JumpIf{Cond: bpf.JumpEqual, Val: binary.BigEndian.Uint32(w[4*i : 4*i+4]), SkipFalse: uint8(skip)})
		}
		prog = append(prog, tail...)
	}
	prog = append(prog, bpf.RetConstant{Val: drop})
	return bpf.Assemble(prog)
}

// guard rebuilds the listener filter for peers; with a listen port and no
// listener found to protect it fails (closed rather than open).
func (s *Speaker) guard(port int32, peers []PeerConfig) error {
	n, err := guardListeners(port, peers)
	if err != nil {
		return err
	}
	if port > 0 && n == 0 && listenerGuardSupported {
		return fmt.Errorf("bgp listener on port %d not found: cannot limit it to the configured peers", port)
	}
	if port > 0 {
		s.log.Debug("bgp listener limited to the configured peers", "listeners", n, "peers", peerAddrs(peers))
	}
	return nil
}

// peerAddrs lists the peers' addresses (for logs).
func peerAddrs(peers []PeerConfig) []netip.Addr {
	out := make([]netip.Addr, 0, len(peers))
	for _, p := range peers {
		out = append(out, p.Address)
	}
	return out
}
