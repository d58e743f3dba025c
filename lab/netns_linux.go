package lab

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
)

// DialIn connects to addr from inside network namespace ns, like a
// process running there would: the socket is created in ns and stays
// there. addr must be a literal IP address and port (no name lookups).
// It works for "tcp" and for connected "udp" sockets alike.
func DialIn(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	return DialFromPath(ctx, filepath.Join(netnsDir, ns), network, addr)
}

// DialFromPath is DialIn for the network namespace at nsPath (a
// /proc/<pid>/ns/net, say).
func DialFromPath(ctx context.Context, nsPath, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread enters ns and never leaves: it is locked and the
		// goroutine ends locked, so the runtime discards the thread
		// instead of running other goroutines in the wrong namespace.
		runtime.LockOSThread()
		h, err := netns.GetFromPath(nsPath)
		if err != nil {
			ch <- result{err: fmt.Errorf("namespace %s: %w", nsPath, err)}
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			ch <- result{err: fmt.Errorf("enter namespace %s: %w", nsPath, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// Dialer returns a dial function (for http.Transport.DialContext or
// rest.Config.Dial) that connects from inside ns.
func Dialer(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return DialIn(ctx, ns, network, addr)
	}
}
