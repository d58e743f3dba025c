package datapath

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/podrouter/podrouter/health"
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

// Usage counts the entries of the conntrack maps and the endpoint map.
// It reads keys and values in batches: cheap enough for every `status`.
func (p *Pinned) Usage() ([]health.MapUsage, error) {
	var out []health.MapUsage
	var errs []error
	for _, m := range []struct {
		name string
		m    *ebpf.Map
		n    func(*ebpf.Map) (int, error)
	}{
		{"ct_tcp", p.ctTCP, countEntries[ctKey, ctEntry]},
		{"ct_other", p.ctOther, countEntries[ctKey, ctEntry]},
		{"endpoints", p.endpoints, countEntries[addrKey, epValue]},
	} {
		n, err := m.n(m.m)
		if err != nil {
			errs = append(errs, fmt.Errorf("count %s: %w", m.name, err))
		}
		out = append(out, health.MapUsage{Map: m.name, Entries: n, Capacity: int(m.m.MaxEntries())})
	}
	return out, errors.Join(errs...)
}

// countEntries counts a hash map's entries with batch lookups, or one key
// at a time where the kernel lacks them.
func countEntries[K, V any](m *ebpf.Map) (int, error) {
	const chunk = 1024
	keys, vals := make([]K, chunk), make([]V, chunk)
	var cursor ebpf.MapBatchCursor
	total := 0
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		total += n
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return total, nil // done
		case errors.Is(err, ebpf.ErrNotSupported):
			total = 0
			var k K
			var v V
			it := m.Iterate()
			for it.Next(&k, &v) {
				total++
			}
			return total, it.Err()
		case err != nil:
			return total, err
		}
	}
}

// FlushConntrack deletes the conntrack entries for which match returns
// true (nil: all) from the maps pinned under pinDir, and returns how many
// it deleted. Flows of deleted entries start over as new: nothing is
// dropped, the next packet creates a fresh entry.
func FlushConntrack(pinDir string, match func(CTEntry) bool) (int, error) {
	if err := checkBPFFS(pinDir); err != nil {
		return 0, err
	}
	now := monotonicNow()
	deleted := 0
	var errs []error
	for _, name := range []string{"pr_ct_tcp", "pr_ct_other"} {
		m, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, name), nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("open pinned map %s: %w", name, err))
			continue
		}
		var doomed []ctKey
		var k ctKey
		var e ctEntry
		it := m.Iterate()
		for it.Next(&k, &e) {
			if match == nil || match(ctToEntry(k, e, now)) {
				doomed = append(doomed, k)
			}
		}
		if err := it.Err(); err != nil {
			errs = append(errs, fmt.Errorf("iterate %s: %w", name, err))
		}
		for _, k := range doomed {
			switch err := m.Delete(&k); {
			case err == nil:
				deleted++
			case errors.Is(err, ebpf.ErrKeyNotExist): // expired and collected meanwhile
			default:
				errs = append(errs, fmt.Errorf("delete from %s: %w", name, err))
			}
		}
		m.Close()
	}
	return deleted, errors.Join(errs...)
}

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
			if errors.Is(err, os.ErrNotExist) {
				continue // unpinned between the listing and here (a daemon detaching it): gone
			}
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
