package metrics

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Check is the outcome of one readiness condition.
type Check struct {
	Name   string // config, bgp, datapath
	OK     bool
	Detail string
}

// readiness evaluates /readyz from the sources.
type readiness struct {
	src     Sources
	timeout time.Duration
}

// Ready evaluates every readiness condition:
//
//   - config: the agent completed a reconcile without error at least once,
//     or its last pass failed only on peer-dependent state;
//   - bgp: at least one session is Established, or no peer is configured;
//   - datapath: the programs are loaded, or the kernel fallback is
//     declared (load failed), or the fast path is disabled.
func (r readiness) Ready(ctx context.Context) []Check {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return []Check{r.config(), r.bgp(ctx), r.datapath()}
}

func (r readiness) config() Check {
	c := Check{Name: "config"}
	a := r.src.Agent.AgentState()
	switch {
	case a.Reconciles == 0:
		c.Detail = "no reconcile completed yet"
	case a.Reconciles > a.Errors:
		// At least one pass ended without error: the config was applied.
		c.OK = true
		c.Detail = fmt.Sprintf("%d reconciles, %d failed", a.Reconciles, a.Errors)
		if a.LastError != "" {
			c.Detail += "; last: " + oneLine(a.LastError)
		}
	case a.LastErrorPeerOnly:
		c.OK = true
		c.Detail = "applied; waiting for peers: " + oneLine(a.LastError)
	default:
		c.Detail = fmt.Sprintf("every reconcile failed (%d); last: %s", a.Errors, oneLine(a.LastError))
	}
	return c
}

func (r readiness) bgp(ctx context.Context) Check {
	c := Check{Name: "bgp"}
	peers, err := r.src.Peers.Peers(ctx)
	if err != nil {
		c.Detail = "cannot list peers: " + err.Error()
		return c
	}
	if len(peers) == 0 {
		c.OK = true
		c.Detail = "no peers configured"
		return c
	}
	var up int
	var states []string
	for _, p := range peers {
		if p.State == "established" {
			up++
		}
		states = append(states, fmt.Sprintf("%s %s", p.Address, p.State))
	}
	c.OK = up > 0
	c.Detail = fmt.Sprintf("%d of %d sessions established (%s)", up, len(peers), strings.Join(states, ", "))
	return c
}

func (r readiness) datapath() Check {
	c := Check{Name: "datapath", OK: true}
	if r.src.Datapath == nil {
		c.Detail = "disabled"
		return c
	}
	st := r.src.Datapath.DatapathState()
	switch st.Mode {
	case DatapathLoaded:
		c.Detail = fmt.Sprintf("loaded, %d uplinks, %d endpoints", len(st.Uplinks), len(st.Endpoints))
		if st.Detail != "" {
			c.Detail += "; last error: " + oneLine(st.Detail)
		}
	case DatapathFallback:
		c.Detail = "fallback to the kernel path: " + oneLine(st.Detail)
	case DatapathDisabled:
		c.Detail = "disabled"
	default:
		c.OK = false
		c.Detail = "not loaded yet"
	}
	return c
}

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ") }

func (r readiness) serveReady(w http.ResponseWriter, req *http.Request) {
	checks := r.Ready(req.Context())
	ok := true
	var b strings.Builder
	for _, c := range checks {
		mark := "ok"
		if !c.OK {
			mark = "FAIL"
			ok = false
		}
		fmt.Fprintf(&b, "%s %s: %s\n", mark, c.Name, c.Detail)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if ok {
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, "ready\n"+b.String())
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprint(w, "not ready\n"+b.String())
}

func serveHealthy(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprint(w, "ok\n")
}
