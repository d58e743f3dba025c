//go:build !linux

package datapath

import (
	"context"
	"fmt"
	"net/netip"
)

type loaded struct{}

// Run reports that the fast path needs Linux.
func (d *Datapath) Run(ctx context.Context) error {
	return fmt.Errorf("%w: eBPF needs Linux", ErrUnavailable)
}

// SetEndpoints records the desired endpoints (no effect off Linux).
func (d *Datapath) SetEndpoints(ctx context.Context, eps []Endpoint) error { return ErrNotRunning }

// SetNextHops records the desired next hops (no effect off Linux).
func (d *Datapath) SetNextHops(ctx context.Context, nhs []NextHop) error { return ErrNotRunning }

// SetPassCIDRs has no effect off Linux.
func (d *Datapath) SetPassCIDRs(ctx context.Context, prefixes []netip.Prefix) error {
	return ErrNotRunning
}

// PassCIDRs is unavailable off Linux.
func (d *Datapath) PassCIDRs() ([]netip.Prefix, error) { return nil, ErrNotRunning }

// Counters is unavailable off Linux.
func (d *Datapath) Counters() ([]Counter, error) { return nil, ErrNotRunning }

// Conntrack is unavailable off Linux.
func (d *Datapath) Conntrack() ([]CTEntry, error) { return nil, ErrNotRunning }

// Monitor is unavailable off Linux.
func (d *Datapath) Monitor(ctx context.Context, types []string, sampleRate uint32, fn func(Event)) error {
	return ErrNotRunning
}

// applyNow has nothing to apply off Linux.
func (d *Datapath) applyNow(context.Context) error { return nil }

// SetKernelConntrack has no effect off Linux.
func (d *Datapath) SetKernelConntrack(m KernelCTMode) error { return ErrNotRunning }

// KernelConntrack is unavailable off Linux.
func (d *Datapath) KernelConntrack() (KernelCTMode, error) { return 0, ErrNotRunning }
