package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podrouter/podrouter/config"
)

// calls records the order in which the fakes were called.
type calls struct {
	mu  sync.Mutex
	log []string
}

func (c *calls) add(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log = append(c.log, s)
}

type fakeSpeaker struct {
	c        *calls
	t        *testing.T
	minWait  time.Duration // the drain's deadline must leave at least this
	drainErr error
}

func (f *fakeSpeaker) DrainAndWait(ctx context.Context) error {
	dl, ok := ctx.Deadline()
	if !ok || time.Until(dl) < f.minWait {
		f.t.Errorf("DrainAndWait's context: deadline %v (set %v), want at least %s away", dl, ok, f.minWait)
	}
	f.c.add("speaker.DrainAndWait")
	return f.drainErr
}
func (f *fakeSpeaker) Close()                         { f.c.add("speaker.Close") }
func (f *fakeFastPath) unpin()                        { f.c.add("datapath.Unpin") }
func (f *fakeAPI) Close()                             { f.c.add("localapi.Close") }
func (f *fakeCNI) removeConflist()                    { f.c.add("cni.RemoveConflist") }
func (f *fakeRoutes) RemoveAll(context.Context) error { f.c.add("routes.RemoveAll"); return f.err }
func (f *fakeRoutes) SetBlackholes(_ context.Context, ps []netip.Prefix) (bool, error) {
	if ps != nil {
		f.c.add("routes.SetBlackholes(non-nil)")
	} else {
		f.c.add("routes.SetBlackholes(nil)")
	}
	return true, nil
}

type (
	fakeFastPath struct{ c *calls }
	fakeAPI      struct{ c *calls }
	fakeCNI      struct{ c *calls }
	fakeRoutes   struct {
		c   *calls
		err error
	}
)

// TestShutdownOrder: a drain withdraws before the NOTIFICATION, detaches
// the fast path before the routes go (traffic falls back to the kernel
// path while it still has the default route), and removes the socket
// last; an uninstall is a drain that also removes the CNI conflist, after
// the routes; a graceful restart touches nothing but the socket. A failing step
// does not stop the ones after it.
func TestShutdownOrder(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	drainAll := []string{"speaker.DrainAndWait", "speaker.Close", "datapath.Unpin", "routes.RemoveAll", "routes.SetBlackholes(nil)", "localapi.Close"}
	for _, tc := range []struct {
		name  string
		mode  shutdownMode
		drain config.Drain
		fail  bool
		want  []string
	}{
		{"restart", shutdownRestart, config.Drain{Mode: config.DrainWithdraw}, false, []string{"localapi.Close"}},
		{"drain", shutdownDrain, config.Drain{Mode: config.DrainWithdraw}, false, drainAll},
		{"drain deprefer", shutdownDrain, config.Drain{Mode: config.DrainDeprefer, WithdrawAfter: time.Minute}, false, drainAll},
		{"drain with failures", shutdownDrain, config.Drain{Mode: config.DrainWithdraw}, true, drainAll},
		{"uninstall", shutdownUninstall, config.Drain{Mode: config.DrainWithdraw}, false,
			append(slices.Clone(drainAll[:len(drainAll)-1]), "cni.RemoveConflist", "localapi.Close")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &calls{}
			sp := &fakeSpeaker{c: c, t: t, minWait: tc.drain.Delay()}
			rt := &fakeRoutes{c: c}
			if tc.fail {
				sp.drainErr, rt.err = errors.New("boom"), errors.New("boom")
			}
			start := time.Now()
			shutdown(tc.mode, log, tc.drain, parts{speaker: sp, fastPath: &fakeFastPath{c}, routes: rt, api: &fakeAPI{c}, cni: &fakeCNI{c}})
			if !slices.Equal(c.log, tc.want) {
				t.Errorf("calls:\n  %s\nwant:\n  %s", strings.Join(c.log, "\n  "), strings.Join(tc.want, "\n  "))
			}
			if tc.mode != shutdownRestart && time.Since(start) < notificationDelay {
				t.Errorf("NOTIFICATION sent %s after the withdraw, want at least %s", time.Since(start), notificationDelay)
			}
		})
	}
}
