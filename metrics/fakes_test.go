package metrics

import (
	"context"
	"slices"
	"sync"
	"testing"
)

// fakePeers is a PeerSource. It fails the test when called without a
// deadline: a scrape must never wait on the speaker unboundedly.
type fakePeers struct {
	t     *testing.T
	mu    sync.Mutex
	peers []Peer
	err   error
}

func (f *fakePeers) Peers(ctx context.Context) ([]Peer, error) {
	if _, ok := ctx.Deadline(); !ok {
		f.t.Error("Peers called without a deadline")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.peers), f.err
}

func (f *fakePeers) set(p []Peer, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peers, f.err = p, err
}

type fakeAgent struct {
	mu sync.Mutex
	st AgentState
}

func (f *fakeAgent) AgentState() AgentState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeAgent) set(st AgentState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st = st
}

type fakeRoutes struct{ st RouteStats }

func (f *fakeRoutes) RouteStats() RouteStats { return f.st }

// fakeDatapath is a DatapathSource. It fails the test when counters or
// maps are read while the fast path is not loaded (they do not exist then).
type fakeDatapath struct {
	t        *testing.T
	mu       sync.Mutex
	st       DatapathState
	counters []DatapathCounter
	usage    []MapUsage
	err      error
}

func (f *fakeDatapath) DatapathState() DatapathState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeDatapath) checkLoaded(what string) {
	if f.st.Mode != DatapathLoaded {
		f.t.Errorf("%s read while the datapath is %s", what, f.st.Mode)
	}
}

func (f *fakeDatapath) DatapathCounters() ([]DatapathCounter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checkLoaded("counters")
	return slices.Clone(f.counters), f.err
}

func (f *fakeDatapath) MapUsage() ([]MapUsage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checkLoaded("map usage")
	return slices.Clone(f.usage), nil
}
