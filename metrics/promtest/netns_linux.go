package promtest

import (
	"context"
	"fmt"
	"net"
	"runtime"

	"github.com/vishvananda/netns"
)

// inNetNS runs f on a thread switched into the named network namespace
// (the current one when name is empty). Sockets f creates stay in that
// namespace. f runs on its own goroutine so that a thread that cannot be
// switched back dies with it instead of running other goroutines.
func inNetNS(name string, f func() error) error {
	if name == "" {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- runLocked(name, f)
	}()
	return <-errc
}

// runLocked switches the locked thread into name, runs f and switches
// back; it unlocks the thread only when the switch back worked.
func runLocked(name string, f func() error) error {
	orig, err := netns.Get()
	if err != nil {
		return fmt.Errorf("current netns: %w", err)
	}
	defer orig.Close()
	ns, err := netns.GetFromName(name)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns %s: %w", name, err)
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		return fmt.Errorf("enter netns %s: %w", name, err)
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("leave netns %s: %w", name, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// dialer dials from inside the named network namespace.
func dialer(name string) (dialFunc, error) {
	var d net.Dialer
	if name == "" {
		return d.DialContext, nil
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNetNS(name, func() error {
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}, nil
}

// freePort asks the kernel of the named namespace for a free loopback port.
func freePort(name string) (int, error) {
	var port int
	err := inNetNS(name, func() error {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		port = l.Addr().(*net.TCPAddr).Port
		return l.Close()
	})
	return port, err
}
