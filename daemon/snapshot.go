package daemon

import (
	"context"

	"github.com/podrouter/podrouter/agent"
	"github.com/podrouter/podrouter/health"
	"github.com/podrouter/podrouter/routes"
)

// Snapshot is the daemon's health now, built from its parts: the status,
// /metrics, /readyz and the Node condition all render it (metrics and k8s
// take the daemon as their HealthSource).
func (d *daemon) Snapshot(ctx context.Context) health.Snapshot {
	st := d.agent.Status()
	asn, rid := d.speaker.LocalIdentity() // the Node may have changed them
	s := health.Snapshot{
		Node: d.cfg.Node.Name, RouterID: rid, ASN: asn,
		PodCIDRs:   st.Node.PodCIDRs, // the Node's now, not the ones at start
		Advertised: d.speaker.Advertised(),
		Drain:      d.speaker.DrainStatus(),
		Reconcile: health.Reconcile{
			Count: st.Reconciles, Errors: st.Errors, At: st.At, Duration: st.Duration,
			Error: st.Err, PeersOnly: st.PeersOnly,
		},
		DefaultV4: defaultRoute(st, routes.FamilyV4),
		DefaultV6: defaultRoute(st, routes.FamilyV6),
		Datapath:  d.fastPath.health(),
		Services:  d.services.health(),
	}
	pctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	peers, err := d.speaker.Peers(pctx)
	if err != nil {
		s.PeersErr = err.Error()
	}
	s.Peers = peers
	return s
}

// defaultRoute is the agent's view of one family's default route.
func defaultRoute(st agent.Status, fam routes.Family) health.Default {
	res := st.Routes[fam]
	d := health.Default{
		Learned: st.Learned[fam], Holding: st.Holding[fam],
		Foreign: res.ForeignPresent, Blocked: res.ForeignBlocking,
	}
	for _, nh := range res.Installed {
		d.Installed = append(d.Installed, nh.Gateway)
	}
	for _, sk := range res.Skipped {
		d.Skipped = append(d.Skipped, sk.String())
	}
	return d
}
