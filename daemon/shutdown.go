package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/podrouter/podrouter/config"
)

// shutdownMode is what the daemon does on its way out.
type shutdownMode int

const (
	// shutdownRestart (graceful restart, SIGTERM by default): no
	// NOTIFICATION, no route removal, pins and tcx links stay. The ToR
	// keeps our routes as stale, the kernel and the fast path keep
	// forwarding until the next instance is back.
	shutdownRestart shutdownMode = iota
	// shutdownDrain (shutdown.mode: drain, or `podrouter drain`): withdraw
	// (after the deprefer phase), close the sessions, detach the fast
	// path, remove the routes.
	shutdownDrain
	// shutdownUninstall (SIGTERM while podrouter's DaemonSet or namespace
	// is being deleted): a drain, then the CNI conflist goes too; the node
	// is left as it was before podrouter came.
	shutdownUninstall
)

// The parts shutdown acts on, as narrow interfaces (tested with fakes).
type (
	// drainer is the BGP speaker (*bgp.Speaker).
	drainer interface {
		DrainAndWait(ctx context.Context) error
		Close() // stops the server: every session gets a Cease NOTIFICATION
	}
	// unpinner is the fast path (*fastPath).
	unpinner interface{ unpin() }
	// routeRemover is the route installer (*routes.Installer).
	routeRemover interface {
		RemoveAll(ctx context.Context) error
		SetBlackholes(ctx context.Context, prefixes []netip.Prefix) (bool, error)
	}
	// closer is the local API (*localAPI): its socket goes last, which is
	// what `podrouter drain` waits for.
	closer interface{ Close() }
	// conflistRemover removes the CNI conflist podrouter wrote
	// (uninstall only; nil outside Kubernetes mode).
	conflistRemover interface{ removeConflist() }
)

type parts struct {
	speaker  drainer
	fastPath unpinner
	routes   routeRemover
	api      closer
	cni      conflistRemover
}

// notificationDelay lets the UPDATEs carrying the withdrawals leave before
// the NOTIFICATION closes the sessions.
const notificationDelay = 200 * time.Millisecond

// shutdown runs the way out, in this order for a drain: withdraw the pod
// CIDRs (waiting out a deprefer phase), close the sessions, detach the
// fast path (pod traffic falls back to the kernel path, which still has
// the default route), remove the default routes, then the pod CIDR
// blackholes, and for an uninstall the CNI conflist; the local API socket
// goes last in every mode.
func shutdown(mode shutdownMode, log *slog.Logger, d config.Drain, p parts) {
	defer p.api.Close()
	if mode == shutdownRestart {
		log.Info("exiting for restart; sessions, routes and datapath pins left for graceful restart")
		return
	}
	log.Info("draining: withdrawing pod CIDRs and closing sessions", "mode", d.Mode)
	// deprefer mode: the pod CIDRs stay advertised, depreferred, for
	// withdrawAfter (terminationGracePeriodSeconds must cover it).
	ctx, cancel := context.WithTimeout(context.Background(), d.Delay()+5*time.Second)
	defer cancel()
	if err := p.speaker.DrainAndWait(ctx); err != nil {
		log.Error("withdraw pod cidrs", "err", err)
	}
	time.Sleep(notificationDelay)
	p.speaker.Close()
	p.fastPath.unpin()
	if err := p.routes.RemoveAll(ctx); err != nil {
		log.Error("remove default routes", "err", err)
	}
	if _, err := p.routes.SetBlackholes(ctx, nil); err != nil {
		log.Error("remove pod cidr blackholes", "err", err)
	}
	if mode == shutdownUninstall && p.cni != nil {
		// Last: pods made until now keep their addresses; no new pod on
		// this node gets one from podrouter's network any more.
		p.cni.removeConflist()
		log.Info("uninstalled: routes, fast path, pins and conflist removed; exiting")
		return
	}
	log.Info("drained; exiting")
}
