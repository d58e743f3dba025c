package datapath

import (
	"net"
	"sync"
)

// podMACs remembers each pod's MAC once the neighbour table showed it, per
// host veth (ifindex and host MAC: a new pod gets a new veth).
type podMACs struct {
	mu sync.Mutex
	m  map[podMACKey]net.HardwareAddr
}

type podMACKey struct {
	ifindex int
	host    string // host-side MAC
}

// remember returns seen, or the MAC remembered for the veth when seen is
// empty; a seen MAC replaces the remembered one.
func (p *podMACs) remember(ifindex int, host, seen net.HardwareAddr) net.HardwareAddr {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[podMACKey]net.HardwareAddr{}
	}
	k := podMACKey{ifindex, host.String()}
	if len(seen) == 6 {
		p.m[k] = seen
		return seen
	}
	return p.m[k]
}

// keep forgets the veths that are gone.
func (p *podMACs) keep(byLink map[int]*Endpoint) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.m {
		if ep, ok := byLink[k.ifindex]; !ok || ep.HostMAC.String() != k.host {
			delete(p.m, k)
		}
	}
}
