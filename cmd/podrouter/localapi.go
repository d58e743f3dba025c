package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/podrouter/podrouter/agent"
	"github.com/podrouter/podrouter/bgp"
	"github.com/podrouter/podrouter/config"
	"github.com/podrouter/podrouter/datapath"
)

// daemon is what the local API serves from.
type daemon struct {
	cfg      *config.Config
	speaker  *bgp.Speaker
	agent    *agent.Agent
	fastPath *fastPath
	drain    func()
}

// StatusReport is the local API's /v1/status document (and `status -o json`).
type StatusReport struct {
	Node          string          `json:"node"`
	RouterID      string          `json:"routerID"`
	ASN           uint32          `json:"asn"`
	PodCIDRs      []netip.Prefix  `json:"podCIDRs"`
	Advertised    []netip.Prefix  `json:"advertised"`
	Drain         string          `json:"drain,omitempty"` // "depreferred (withdrawn in 12s)", "withdrawn"
	Peers         []PeerReport    `json:"peers"`
	Defaults      []DefaultReport `json:"defaults"`
	LastReconcile time.Time       `json:"lastReconcile"`
	ReconcileTook string          `json:"reconcileDuration"`
	Reconciles    uint64          `json:"reconciles"`
	Errors        uint64          `json:"reconcileErrors"`
	LastError     string          `json:"lastError,omitempty"`
	FastPath      FastPathReport  `json:"fastPath"`
	Warnings      []string        `json:"warnings,omitempty"`
}

// PeerReport is one neighbour in the status.
type PeerReport struct {
	Address        netip.Addr `json:"address"`
	ASN            uint32     `json:"asn"`
	State          string     `json:"state"`
	AdminState     string     `json:"adminState"`
	Uptime         string     `json:"uptime"`
	Received       uint64     `json:"received"`
	Accepted       uint64     `json:"accepted"`
	Advertised     uint64     `json:"advertised"`
	MaxPrefixTrips uint64     `json:"maxPrefixTrips"`
	BFD            string     `json:"bfd,omitempty"` // "" (off), down, init, up, admin-down
	LastError      string     `json:"lastError,omitempty"`
}

// DefaultReport is the default route of one family.
type DefaultReport struct {
	Family    string       `json:"family"`
	Learned   []netip.Addr `json:"learned"`
	Installed []netip.Addr `json:"installed"`
	Skipped   []string     `json:"skipped,omitempty"`
	Holding   bool         `json:"startupHold,omitempty"`
	Foreign   bool         `json:"foreignDefaultPresent,omitempty"`
	Blocked   bool         `json:"blockedByForeignDefault,omitempty"`
}

func (d *daemon) status(ctx context.Context) StatusReport {
	st := d.agent.Status()
	pods := d.cfg.PodCIDRs
	asn, rid := d.speaker.LocalIdentity() // the Node may have changed them
	r := StatusReport{
		Node: d.cfg.Node.Name, RouterID: rid.String(), ASN: asn,
		PodCIDRs: pods, Advertised: d.speaker.Advertised(),
		LastReconcile: st.At, ReconcileTook: st.Duration.String(),
		Reconciles: st.Reconciles, Errors: st.Errors, LastError: st.Err,
	}
	switch ds, in := d.speaker.DrainState(); ds {
	case "depreferred":
		r.Drain = fmt.Sprintf("depreferred (withdrawn in %s)", in.Round(time.Second))
	case "withdrawn":
		r.Drain = "withdrawn"
	}
	peers, err := d.speaker.Peers(ctx)
	if err != nil {
		r.Warnings = append(r.Warnings, "bgp: "+err.Error())
	}
	for _, p := range peers {
		r.Peers = append(r.Peers, PeerReport{
			Address: p.Address, ASN: p.ASN, State: p.State, AdminState: p.AdminState,
			Uptime: p.Uptime.String(), Received: p.Received, Accepted: p.Accepted, Advertised: p.Advertised,
			MaxPrefixTrips: p.MaxPrefixTrips, BFD: p.BFD, LastError: p.LastError,
		})
		if p.BFD != "" && p.BFD != "up" {
			r.Warnings = append(r.Warnings, fmt.Sprintf("peer %s: BFD is %s: a silent failure is detected by the hold timer only", p.Address, p.BFD))
		}
		if p.State != "established" {
			r.Warnings = append(r.Warnings, fmt.Sprintf("peer %s is %s", p.Address, p.State))
		}
		if p.AdminState == "pfx_ct" {
			r.Warnings = append(r.Warnings, fmt.Sprintf("peer %s is in max-prefix back-off", p.Address))
		}
	}
	for _, fam := range []agent.Family{agent.IPv4, agent.IPv6} {
		res := st.Routes[fam]
		dr := DefaultReport{
			Family: fmt.Sprintf("ipv%d", fam), Learned: st.Learned[fam], Installed: res.Installed,
			Skipped: res.Skipped, Holding: st.Holding[fam], Foreign: res.ForeignPresent, Blocked: res.ForeignBlocking,
		}
		if dr.Blocked {
			r.Warnings = append(r.Warnings, dr.Family+": a default route podrouter did not install sits at its table and metric; podrouter's is not installed")
		} else if dr.Foreign {
			r.Warnings = append(r.Warnings, dr.Family+": a default route podrouter did not install is present (left untouched)")
		}
		if len(dr.Learned) == 0 && !dr.Holding {
			r.Warnings = append(r.Warnings, dr.Family+": no peer offers a default route")
		}
		r.Defaults = append(r.Defaults, dr)
	}
	if d.fastPath != nil {
		r.FastPath = d.fastPath.Report()
		r.Warnings = append(r.Warnings, r.FastPath.warnings()...)
	}
	return r
}

// localAPI serves the CLI on a unix socket, mode 0600. Never TCP.
type localAPI struct {
	path string
	ln   net.Listener
	srv  *http.Server
	log  *slog.Logger
}

func newLocalAPI(path string, log *slog.Logger, d *daemon) (*localAPI, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("local api socket dir: %w", err)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("local api %s: another podrouter is serving it", path)
	}
	_ = os.Remove(path) // stale socket of a previous instance; absence is fine
	old := umask(0o177)
	ln, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("local api: %w", err)
	}
	// The socket must outlive the HTTP server: it goes only in Close, at the
	// very end of the daemon, which is what `podrouter drain` waits for.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("local api: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, d.status(r.Context()))
	})
	var dp *datapath.Datapath
	if d.fastPath != nil {
		dp = d.fastPath.dp
	}
	mux.HandleFunc("GET /v1/monitor", serveMonitor(dp, ifName))
	mux.HandleFunc("POST /v1/drain", func(w http.ResponseWriter, r *http.Request) {
		log.Info("drain requested over the local api")
		// In deprefer mode the daemon exits only after withdrawAfter.
		writeJSON(w, drainReply{Result: "draining", WithdrawAfter: d.cfg.BGP.Drain.Delay().String()})
		d.drain()
	})
	return &localAPI{path: path, ln: ln, log: log, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}, nil
}

// drainReply answers POST /v1/drain.
type drainReply struct {
	Result        string `json:"result"`
	WithdrawAfter string `json:"withdrawAfter"` // the deprefer phase before the withdraw
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to do
}

// Serve blocks until ctx ends. The socket stays until Close, so that
// `podrouter drain` can wait for the whole shutdown.
func (a *localAPI) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = a.srv.Shutdown(sctx) // best effort on the way out
	}()
	err := a.srv.Serve(a.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (a *localAPI) Close() {
	a.ln.Close()
	os.Remove(a.path)
}

// client side

func apiClient(socket string) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}
}

func clientFlags(name string, args []string) (socket, output string, err error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	s := fs.String("socket", config.DefaultSocket, "podrouter's local API socket")
	o := fs.String("o", "table", "output: table or json")
	if err := fs.Parse(args); err != nil {
		return "", "", usageError{err.Error()}
	}
	if *o != "table" && *o != "json" {
		return "", "", usageError{"-o: want table or json"}
	}
	return *s, *o, nil
}

func cmdStatus(ctx context.Context, args []string) error {
	socket, output, err := clientFlags("status", args)
	if err != nil {
		return err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://podrouter/v1/status", nil)
	resp, err := apiClient(socket).Do(req)
	if err != nil {
		return fmt.Errorf("is podrouter running? %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if output == "json" {
		_, err = os.Stdout.Write(body)
		return err
	}
	var r StatusReport
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("decode status: %w", err)
	}
	printStatus(os.Stdout, r, time.Now())
	return nil
}

// printStatus renders the status table; now is when it is read (the
// last reconcile shows as an age).
func printStatus(out io.Writer, r StatusReport, now time.Time) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Node:\t%s (router-id %s, AS %d)\n", r.Node, r.RouterID, r.ASN)
	fmt.Fprintf(w, "Pod CIDRs:\t%s\n", joinAny(r.PodCIDRs))
	fmt.Fprintf(w, "Advertised:\t%s\n", joinAny(r.Advertised))
	if r.Drain != "" {
		fmt.Fprintf(w, "Drain:\t%s\n", r.Drain)
	}
	printFastPath(w, r.FastPath)
	fmt.Fprintf(w, "Reconcile:\t%d runs, %d errors, last %s ago (%s)\n", r.Reconciles, r.Errors,
		now.Sub(r.LastReconcile).Truncate(time.Millisecond), r.ReconcileTook)
	w.Flush()
	fmt.Fprintln(out, "\nBGP peers:")
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  PEER\tAS\tSTATE\tBFD\tUPTIME\tRCVD\tACCEPTED\tADV\tMAXPFX-TRIPS")
	for _, p := range r.Peers {
		state := p.State
		if p.AdminState != "" && p.AdminState != "up" {
			state += "(" + p.AdminState + ")"
		}
		fmt.Fprintf(w, "  %s\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t%d\n", p.Address, p.ASN, state, orDash(p.BFD), p.Uptime, p.Received, p.Accepted, p.Advertised, p.MaxPrefixTrips)
	}
	w.Flush()
	fmt.Fprintln(out, "\nDefault routes:")
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  FAMILY\tLEARNED\tINSTALLED\tNOTE")
	for _, d := range r.Defaults {
		var note []string
		if d.Holding {
			note = append(note, "startup hold")
		}
		note = append(note, d.Skipped...)
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", d.Family, joinAny(d.Learned), joinAny(d.Installed), orDash(strings.Join(note, "; ")))
	}
	w.Flush()
	if r.LastError != "" {
		fmt.Fprintf(out, "\nLast error: %s\n", r.LastError)
	}
	if len(r.Warnings) > 0 {
		fmt.Fprintln(out, "\nWarnings:")
		for _, s := range r.Warnings {
			fmt.Fprintln(out, "  -", s)
		}
	}
}

// printFastPath writes the datapath lines of the status table: mode,
// attached programs, endpoints and map usage.
func printFastPath(w io.Writer, fp FastPathReport) {
	mode := fp.Mode
	if mode == "" {
		mode = modeKernel
	}
	detail := "fast path " + fp.State
	if fp.Reason != "" {
		// The reason wraps datapath.ErrUnavailable: say it once.
		detail += ": " + strings.TrimPrefix(fp.Reason, datapath.ErrUnavailable.Error()+": ")
	}
	if fp.PinDir != "" && fp.State != fastPathUnavailable {
		detail += ", pins in " + fp.PinDir
	}
	fmt.Fprintf(w, "Datapath:\t%s (%s)\n", mode, detail)
	if !fp.Enabled || fp.State == fastPathUnavailable {
		return
	}
	net := "from-network on " + orDash(strings.Join(fp.FromNetwork, ", "))
	ep := fmt.Sprintf("from-endpoint on %d interfaces", len(fp.FromEndpoint))
	if len(fp.FromEndpoint) > 0 {
		ep += " (" + strings.Join(fp.FromEndpoint, ", ") + ")"
	}
	fmt.Fprintf(w, "Fast path:\t%d programs attached: %s; %s\n", len(fp.Attached), net, ep)
	if u, ok := fp.usage("endpoints"); ok {
		fmt.Fprintf(w, "Endpoints:\t%d pods hooked, %d/%d addresses in the endpoint map\n", len(fp.FromEndpoint), u.Entries, u.Capacity)
	}
	var ct []string
	for _, m := range fp.Maps {
		if name, ok := strings.CutPrefix(m.Map, "ct_"); ok {
			pct := 0.0
			if m.Capacity > 0 {
				pct = float64(m.Entries) * 100 / float64(m.Capacity)
			}
			ct = append(ct, fmt.Sprintf("%s %d/%d (%.1f%%)", name, m.Entries, m.Capacity, pct))
		}
	}
	if len(ct) > 0 {
		fmt.Fprintf(w, "Conntrack:\t%s\n", strings.Join(ct, ", "))
	} else if fp.MapsErr != "" {
		fmt.Fprintf(w, "Conntrack:\tunknown (%s)\n", fp.MapsErr)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func joinAny[T fmt.Stringer](xs []T) string {
	if len(xs) == 0 {
		return "-"
	}
	ss := make([]string, len(xs))
	for i, x := range xs {
		ss[i] = x.String()
	}
	slices.Sort(ss)
	return strings.Join(ss, ", ")
}

func cmdDrain(ctx context.Context, args []string) error {
	socket, _, err := clientFlags("drain", args)
	if err != nil {
		return err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://podrouter/v1/drain", nil)
	resp, err := apiClient(socket).Do(req)
	if err != nil {
		return fmt.Errorf("is podrouter running? %w", err)
	}
	var reply drainReply
	_ = json.NewDecoder(resp.Body).Decode(&reply) // an old daemon: no deprefer phase
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("drain: %s", resp.Status)
	}
	wait, _ := time.ParseDuration(reply.WithdrawAfter)
	if wait > 0 {
		fmt.Printf("draining: pod CIDRs depreferred, withdrawn in %s\n", wait)
	}
	// Wait for the daemon to finish: the socket disappears when it exits.
	deadline := time.Now().Add(wait + 10*time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(socket); errors.Is(err, os.ErrNotExist) {
			fmt.Println("drained")
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("drain: daemon did not exit within %s", wait+10*time.Second)
}
