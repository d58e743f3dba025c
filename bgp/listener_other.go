//go:build !linux

package bgp

const listenerGuardSupported = false

// guardListeners needs Linux socket filters; elsewhere GoBGP's own checks
// after accept are all there is.
func guardListeners(port int32, peers []PeerConfig) (int, error) { return 0, nil }
