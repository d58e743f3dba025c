package health

import (
	"fmt"
	"strings"
)

// Check is the outcome of one readiness condition.
type Check struct {
	Name   string // config, bgp, datapath
	OK     bool
	Detail string
}

// Ready evaluates every readiness condition (/readyz):
//
//   - config: a reconcile completed without error at least once, or the
//     last pass failed only on peer-dependent state;
//   - bgp: at least one session is Established, or no peer is configured;
//   - datapath: the programs are loaded, or the kernel fallback is
//     declared (load failed), or the fast path is disabled.
func (s Snapshot) Ready() (bool, []Check) {
	checks := []Check{s.configCheck(), s.bgpCheck(), s.datapathCheck()}
	for _, c := range checks {
		if !c.OK {
			return false, checks
		}
	}
	return true, checks
}

func (s Snapshot) configCheck() Check {
	c := Check{Name: "config"}
	r := s.Reconcile
	switch {
	case r.Count == 0:
		c.Detail = "no reconcile completed yet"
	case r.Count > r.Errors:
		// At least one pass ended without error: the config was applied.
		c.OK = true
		c.Detail = fmt.Sprintf("%d reconciles, %d failed", r.Count, r.Errors)
		if r.Error != "" {
			c.Detail += "; last: " + oneLine(r.Error)
		}
	case r.PeersOnly:
		c.OK = true
		c.Detail = "applied; waiting for peers: " + oneLine(r.Error)
	default:
		c.Detail = fmt.Sprintf("every reconcile failed (%d); last: %s", r.Errors, oneLine(r.Error))
	}
	return c
}

func (s Snapshot) bgpCheck() Check {
	c := Check{Name: "bgp"}
	if s.PeersErr != "" {
		c.Detail = "cannot list peers: " + s.PeersErr
		return c
	}
	if len(s.Peers) == 0 {
		c.OK = true
		c.Detail = "no peers configured"
		return c
	}
	states := make([]string, 0, len(s.Peers))
	for _, p := range s.Peers {
		states = append(states, fmt.Sprintf("%s %s", p.Address, p.State))
	}
	up := s.Established()
	c.OK = up > 0
	c.Detail = fmt.Sprintf("%d of %d sessions established (%s)", up, len(s.Peers), strings.Join(states, ", "))
	return c
}

func (s Snapshot) datapathCheck() Check {
	c := Check{Name: "datapath", OK: true}
	d := s.Datapath
	switch d.State {
	case DatapathActive:
		c.Detail = fmt.Sprintf("loaded, %d uplinks, %d endpoints", len(d.FromNetwork), len(d.FromEndpoint))
		if d.Error != "" {
			c.Detail += "; last error: " + oneLine(d.Error)
		}
	case DatapathUnavailable:
		c.Detail = "fallback to the kernel path: " + oneLine(d.Reason)
	case DatapathDisabled:
		c.Detail = "disabled"
	default:
		c.OK = false
		c.Detail = "not loaded yet"
	}
	return c
}

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ") }
