package bgp

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

const listenerGuardSupported = true

// guardListeners attaches the peer filter (listenerFilter) to every
// listening TCP socket of this process bound to port: GoBGP's BGP
// listeners, which it does not expose. Each candidate is checked again
// (listening, TCP, the port) right before the filter goes on, so a file
// descriptor reused meanwhile is left alone. port <= 0: nothing listens.
func guardListeners(port int32, peers []PeerConfig) (int, error) {
	if port <= 0 {
		return 0, nil
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, fmt.Errorf("list own sockets: %w", err)
	}
	n := 0
	var errs []error
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if link, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || !strings.HasPrefix(link, "socket:") {
			continue
		}
		v6, ok := bgpListener(fd, port)
		if !ok {
			continue
		}
		ins, err := listenerFilter(v6, peers)
		if err != nil {
			return n, fmt.Errorf("assemble listener filter: %w", err)
		}
		fprog := unix.SockFprog{Len: uint16(len(ins)), Filter: (*unix.SockFilter)(unsafe.Pointer(&ins[0]))}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
			errs = append(errs, fmt.Errorf("attach filter to the bgp listener (fd %d): %w", fd, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// bgpListener reports whether fd is a listening TCP socket bound to port,
// and whether it is IPv6.
func bgpListener(fd int, port int32) (v6, ok bool) {
	if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
		return false, false
	}
	if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL); err != nil || v != unix.IPPROTO_TCP {
		return false, false
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return false, false
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return false, int32(a.Port) == port
	case *unix.SockaddrInet6:
		return true, int32(a.Port) == port
	}
	return false, false
}
