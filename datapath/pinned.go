package datapath

import (
	"net"
	"net/netip"
)

// PinnedEndpoint is one entry of the pinned endpoint map.
type PinnedEndpoint struct {
	Addr    netip.Addr
	IfIndex int
	ID      uint32
	PodMAC  net.HardwareAddr
	HostMAC net.HardwareAddr
}

// PinnedNextHop is one valid slot of the pinned next-hop map.
type PinnedNextHop struct {
	Family  int // 4 or 6
	Slot    int // slot within the family
	IfIndex int
	SrcMAC  net.HardwareAddr
	DstMAC  net.HardwareAddr
}

// PinnedLink is one tcx link pinned under the pin dir.
type PinnedLink struct {
	IfName  string // from the pin's name
	Uplink  bool   // from-network (true) or from-endpoint
	IfIndex int    // where the link is attached (0 if it could not be read)
	ProgID  uint32 // program the link runs
}
