package datapath

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sort"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Pinned is a read-only view of the maps a daemon pinned under its pin
// dir, for the operator CLI (`podrouter bpf …`). It works whether or not
// the daemon runs: the pins outlive it.
type Pinned struct {
	counters, ctTCP, ctOther, endpoints, nexthops *ebpf.Map
}

// OpenPinned opens the pinned maps under pinDir read-only.
func OpenPinned(pinDir string) (*Pinned, error) {
	if err := checkBPFFS(pinDir); err != nil {
		return nil, err
	}
	p := &Pinned{}
	for name, dst := range map[string]**ebpf.Map{
		"pr_counters": &p.counters, "pr_ct_tcp": &p.ctTCP, "pr_ct_other": &p.ctOther,
		"pr_endpoints": &p.endpoints, "pr_nexthops": &p.nexthops,
	} {
		m, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, name), &ebpf.LoadPinOptions{ReadOnly: true})
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("open pinned map %s: %w", name, err)
		}
		*dst = m
	}
	return p, nil
}

// Close releases the maps (the pins stay).
func (p *Pinned) Close() error {
	var errs []error
	for _, m := range []*ebpf.Map{p.counters, p.ctTCP, p.ctOther, p.endpoints, p.nexthops} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}

// Counters returns the per-direction, per-reason counters summed over CPUs.
func (p *Pinned) Counters() ([]Counter, error) { return readCounters(p.counters) }

// Conntrack lists the conntrack entries (TCP first).
func (p *Pinned) Conntrack() ([]CTEntry, error) { return readConntrack(p.ctTCP, p.ctOther) }

// Endpoints lists the endpoint map, by address.
func (p *Pinned) Endpoints() ([]PinnedEndpoint, error) {
	var out []PinnedEndpoint
	var k addrKey
	var v epValue
	it := p.endpoints.Iterate()
	for it.Next(&k, &v) {
		out = append(out, PinnedEndpoint{
			Addr: wordsAddr(k.Addr, k.Family), IfIndex: int(v.Ifindex), ID: v.Id,
			PodMAC: net.HardwareAddr(append([]byte(nil), v.PodMac[:]...)), HostMAC: net.HardwareAddr(append([]byte(nil), v.HostMac[:]...)),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Less(out[j].Addr) })
	return out, it.Err()
}

// NextHops lists the valid next-hop slots, IPv4 first.
func (p *Pinned) NextHops() ([]PinnedNextHop, error) {
	var out []PinnedNextHop
	for i := range 2 * nhSlots {
		k := uint32(i)
		var v nhValue
		if err := p.nexthops.Lookup(&k, &v); err != nil {
			return out, fmt.Errorf("read next-hop slot %d: %w", i, err)
		}
		if v.Valid == 0 {
			continue
		}
		fam := 4
		if i >= nhSlots {
			fam = 6
		}
		out = append(out, PinnedNextHop{
			Family: fam, Slot: i % nhSlots, IfIndex: int(v.Ifindex),
			SrcMAC: net.HardwareAddr(append([]byte(nil), v.SrcMac[:]...)), DstMAC: net.HardwareAddr(append([]byte(nil), v.DstMac[:]...)),
		})
	}
	return out, nil
}

// PinnedLinks lists the tcx links pinned under pinDir.
func PinnedLinks(pinDir string) ([]PinnedLink, error) {
	var out []PinnedLink
	var errs []error
	for _, prefix := range []string{uplinkPrefix, endpointPrefix} {
		pins, err := pinnedLinks(pinDir, prefix)
		errs = append(errs, err)
		for name, pin := range pins {
			pl := PinnedLink{IfName: name, Uplink: prefix == uplinkPrefix}
			l, err := link.LoadPinnedLink(pin, nil) // links cannot be opened read-only
			if err != nil {
				errs = append(errs, fmt.Errorf("open pinned link %s: %w", pin, err))
				out = append(out, pl)
				continue
			}
			if info, err := l.Info(); err == nil {
				pl.ProgID = uint32(info.Program)
				if tcx := info.TCX(); tcx != nil {
					pl.IfIndex = int(tcx.Ifindex)
				}
			}
			l.Close()
			out = append(out, pl)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IfName < out[j].IfName })
	return out, errors.Join(errs...)
}
