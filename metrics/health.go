package metrics

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// readiness serves /readyz from the health snapshot.
type readiness struct {
	src     HealthSource
	timeout time.Duration
}

func (r readiness) serveReady(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := context.WithTimeout(req.Context(), r.timeout)
	defer cancel()
	ok, checks := r.src.Snapshot(ctx).Ready()
	var b strings.Builder
	for _, c := range checks {
		mark := "ok"
		if !c.OK {
			mark = "FAIL"
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
