//go:build !linux

package routes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
)

var errUnsupported = errors.New("routes: only supported on linux")

// Installer is a stub off Linux: every call fails.
type Installer struct{ cfg Config }

// New validates cfg; the returned Installer fails every call off Linux.
func New(cfg Config, _ *slog.Logger) (*Installer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("routes config: %w", err)
	}
	return &Installer{cfg: cfg}, nil
}

// Config returns the configuration in effect, defaults applied.
func (i *Installer) Config() Config { return i.cfg }

// SetDefault fails off Linux.
func (i *Installer) SetDefault(context.Context, Family, []netip.Addr) (Result, error) {
	return Result{}, errUnsupported
}

// Current fails off Linux.
func (i *Installer) Current(context.Context, Family) ([]NextHop, error) { return nil, errUnsupported }

// RemoveAll fails off Linux.
func (i *Installer) RemoveAll(context.Context) error { return errUnsupported }

// Run fails off Linux.
func (i *Installer) Run(context.Context, Kicker) error { return errUnsupported }

// Stats returns zero counters.
func (i *Installer) Stats() Stats { return Stats{} }

// Close does nothing.
func (i *Installer) Close() error { return nil }

// SetBlackholes fails off Linux.
func (i *Installer) SetBlackholes(context.Context, []netip.Prefix) (bool, error) {
	return false, errUnsupported
}

// DiscoverPeers fails off Linux.
func (i *Installer) DiscoverPeers(context.Context, []string, bool) ([]DiscoveredPeer, []string, error) {
	return nil, nil, errUnsupported
}
