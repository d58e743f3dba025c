package routes

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	subscribeBuffer   = 1 << 20 // socket receive buffer for update bursts
	resubscribeMin    = 50 * time.Millisecond
	resubscribeMax    = 5 * time.Second
	resubscribeHealed = 30 * time.Second // a subscription this old resets the backoff

	// carrierPoll is how often Run reads the carrier of the links holding
	// our next hops. The kernel reports a carrier loss through linkwatch,
	// which sends at most one non-urgent event per second for the whole
	// host (a physical NIC's carrier loss is not urgent) and merges a flap
	// inside that window into nothing; IFF_LOWER_UP in a link dump is live.
	carrierPoll = 20 * time.Millisecond
)

// Run watches links and routes and calls k.Kick on every change that may
// alter SetDefault's answer: a link appearing, vanishing or changing its
// administrative or operational state; a default route in our table (or any
// route with our protocol) added or deleted; a connected route changing. It
// kicks once right after (re)subscribing, since events before that are
// lost. It blocks until ctx ends, re-subscribing with backoff when a
// subscription fails (for example ENOBUFS after an overrun), and returns nil
// on cancellation.
func (i *Installer) Run(ctx context.Context, k Kicker) error {
	var nsp *netns.NsHandle
	if i.cfg.NetNSPath != "" {
		ns, err := netns.GetFromPath(i.cfg.NetNSPath)
		if err != nil {
			return fmt.Errorf("watch routes: open netns %s: %w", i.cfg.NetNSPath, err)
		}
		defer ns.Close()
		nsp = &ns
	}
	backoff := resubscribeMin
	for {
		start := time.Now()
		err := i.watch(ctx, k, nsp)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > resubscribeHealed {
			backoff = resubscribeMin
		}
		i.counter.resubscriptions.Add(1)
		i.log.Warn("netlink subscription lost", "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, resubscribeMax)
	}
}

// linkSig is the part of a link's state that decides next hop usability.
type linkSig struct {
	flags uint32
	oper  netlink.LinkOperState
}

const linkSigFlags = unix.IFF_UP | unix.IFF_LOWER_UP | unix.IFF_RUNNING

// watch runs one pair of subscriptions until ctx ends (nil) or one of them
// fails (the error).
func (i *Installer) watch(ctx context.Context, k Kicker, ns *netns.NsHandle) error {
	done := make(chan struct{})
	var lastErr atomic.Value // error reported by the subscription goroutines
	onErr := func(err error) {
		if ctx.Err() == nil {
			lastErr.Store(err)
		}
	}
	linkCh := make(chan netlink.LinkUpdate, 64)
	routeCh := make(chan netlink.RouteUpdate, 64)
	if err := netlink.LinkSubscribeWithOptions(linkCh, done, netlink.LinkSubscribeOptions{
		Namespace: ns, ErrorCallback: onErr, ReceiveBufferSize: subscribeBuffer,
	}); err != nil {
		close(done)
		return fmt.Errorf("subscribe to link updates: %w", err)
	}
	if err := netlink.RouteSubscribeWithOptions(routeCh, done, netlink.RouteSubscribeOptions{
		Namespace: ns, ErrorCallback: onErr, ReceiveBufferSize: subscribeBuffer,
	}); err != nil {
		close(done)
		for range linkCh {
		}
		return fmt.Errorf("subscribe to route updates: %w", err)
	}
	// Stop both subscriptions; each goroutine closes its channel on exit and
	// may be blocked sending to it, so drain until closed.
	stop := func() {
		close(done)
		for linkCh != nil || routeCh != nil {
			select {
			case _, ok := <-linkCh:
				if !ok {
					linkCh = nil
				}
			case _, ok := <-routeCh:
				if !ok {
					routeCh = nil
				}
			}
		}
	}
	closed := func(what string) error {
		err, _ := lastErr.Load().(error)
		if err == nil {
			err = errors.New("channel closed")
		}
		return fmt.Errorf("%s subscription: %w", what, err)
	}

	poll, err := i.newPoller(ns)
	if err != nil {
		stop()
		return err
	}
	defer poll.close()
	tick := time.NewTicker(carrierPoll)
	defer tick.Stop()

	k.Kick()
	links := make(map[int]linkSig)
	for {
		select {
		case <-ctx.Done():
			stop()
			return nil
		case <-tick.C:
			if poll.changed(i.watched.Load()) {
				k.Kick()
			}
		case u, ok := <-linkCh:
			if !ok {
				linkCh = nil
				stop()
				return closed("link")
			}
			if linkChanged(links, u) {
				k.Kick()
			}
		case u, ok := <-routeCh:
			if !ok {
				routeCh = nil
				stop()
				return closed("route")
			}
			if i.routeRelevant(u.Route) {
				k.Kick()
			}
		}
	}
}

// linkChanged records u and reports whether it may matter: a link seen for
// the first time, deleted, or with other up/carrier flags or operstate.
func linkChanged(seen map[int]linkSig, u netlink.LinkUpdate) bool {
	a := u.Link.Attrs()
	if u.Header.Type == unix.RTM_DELLINK {
		delete(seen, a.Index)
		return true
	}
	sig := linkSig{flags: a.RawFlags & linkSigFlags, oper: a.OperState}
	old, known := seen[a.Index]
	seen[a.Index] = sig
	return !known || old != sig
}

// routeRelevant reports whether a route update may change SetDefault's
// answer: anything carrying our protocol, and any route of our table or main
// (a default appearing or vanishing, a connected route, or a more specific
// route that now covers a gateway).
func (i *Installer) routeRelevant(r netlink.Route) bool {
	if r.Family != netlink.FAMILY_V4 && r.Family != netlink.FAMILY_V6 {
		return false
	}
	if r.Flags&unix.RTM_F_CLONED != 0 {
		return false
	}
	return int(r.Protocol) == i.cfg.Protocol || r.Table == i.cfg.Table || r.Table == unix.RT_TABLE_MAIN
}

// carrierPoller reads the carrier flag of a few links by index.
type carrierPoller struct {
	h       *netlink.Handle
	carrier map[int]bool
}

func (i *Installer) newPoller(ns *netns.NsHandle) (*carrierPoller, error) {
	var h *netlink.Handle
	var err error
	if ns != nil {
		h, err = netlink.NewHandleAt(*ns, unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, fmt.Errorf("open netlink socket for carrier poll: %w", err)
	}
	if err := h.SetSocketTimeout(socketTimeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("set netlink socket timeout: %w", err)
	}
	return &carrierPoller{h: h, carrier: make(map[int]bool)}, nil
}

func (p *carrierPoller) close() { p.h.Close() }

// changed reads the carrier of the watched links and reports whether one
// changed since the last read, or is off on first sight (SetDefault only
// installs next hops on links with carrier, so the state moved since).
func (p *carrierPoller) changed(watched *[]int) bool {
	var idx []int
	if watched != nil {
		idx = *watched
	}
	if len(idx) == 0 && len(p.carrier) == 0 {
		return false
	}
	kick := false
	seen := make(map[int]bool, len(idx))
	for _, ix := range idx {
		l, err := p.h.LinkByIndex(ix)
		if err != nil {
			continue // a deleted link comes as RTM_DELLINK
		}
		seen[ix] = true
		c := l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0
		old, known := p.carrier[ix]
		if (known && old != c) || (!known && !c) {
			kick = true
		}
		p.carrier[ix] = c
	}
	for ix := range p.carrier {
		if !seen[ix] {
			delete(p.carrier, ix)
		}
	}
	return kick
}
