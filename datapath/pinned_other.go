//go:build !linux

package datapath

import "github.com/podrouter/podrouter/health"

// Pinned is unavailable off Linux.
type Pinned struct{}

// OpenPinned reports that pinned maps need Linux.
func OpenPinned(string) (*Pinned, error) { return nil, ErrNotRunning }

// Close does nothing.
func (p *Pinned) Close() error { return nil }

// Counters is unavailable off Linux.
func (p *Pinned) Counters() ([]Counter, error) { return nil, ErrNotRunning }

// Conntrack is unavailable off Linux.
func (p *Pinned) Conntrack() ([]CTEntry, error) { return nil, ErrNotRunning }

// Usage is unavailable off Linux.
func (p *Pinned) Usage() ([]health.MapUsage, error) { return nil, ErrNotRunning }

// FlushConntrack is unavailable off Linux.
func FlushConntrack(string, func(CTEntry) bool) (int, error) { return 0, ErrNotRunning }

// Endpoints is unavailable off Linux.
func (p *Pinned) Endpoints() ([]PinnedEndpoint, error) { return nil, ErrNotRunning }

// NextHops is unavailable off Linux.
func (p *Pinned) NextHops() ([]PinnedNextHop, error) { return nil, ErrNotRunning }

// PinnedLinks is unavailable off Linux.
func PinnedLinks(string) ([]PinnedLink, error) { return nil, ErrNotRunning }

// HookPrograms is unavailable off Linux.
func HookPrograms(int) ([]uint32, error) { return nil, ErrNotRunning }

// Unpin is unavailable off Linux.
func Unpin(string) error { return ErrNotRunning }
