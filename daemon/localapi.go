package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/podrouter/podrouter/api"
	"github.com/podrouter/podrouter/datapath"
)

// localAPI serves the CLI (package api) on a unix socket, mode 0600.
// Never TCP.
type localAPI struct {
	path      string
	ln        net.Listener
	srv       *http.Server
	log       *slog.Logger
	closeOnce sync.Once
}

// socketHandover is how long a new instance waits for the previous one's
// socket to close: a process the kernel reports exited (its main thread a
// zombie) can still hold its listener while its other threads finish.
const socketHandover = 2 * time.Second

// serving reports whether something still accepts connections on the
// socket at path after waiting up to wait for it to stop.
func serving(path string, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		if time.Now().After(deadline) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func newLocalAPI(path string, log *slog.Logger, d *daemon, drain func()) (*localAPI, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("local api socket dir: %w", err)
	}
	if serving(path, socketHandover) {
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
	mux.HandleFunc("GET "+api.PathStatus, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, api.StatusOf(d.Snapshot(r.Context())))
	})
	mux.HandleFunc("GET "+api.PathMonitor, serveMonitor(d.fastPath.dp, ifName))
	mux.HandleFunc("POST "+api.PathDrain, func(w http.ResponseWriter, r *http.Request) {
		log.Info("drain requested over the local api")
		// In deprefer mode the daemon exits only after withdrawAfter.
		writeJSON(w, api.DrainReply{Result: "draining", WithdrawAfter: d.cfg.BGP.Drain.Delay().String()})
		drain()
	})
	return &localAPI{path: path, ln: ln, log: log, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}, nil
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

// Close removes the socket; the second call does nothing.
func (a *localAPI) Close() {
	a.closeOnce.Do(func() {
		a.ln.Close()
		os.Remove(a.path)
	})
}

// serveMonitor streams datapath events as NDJSON until the client goes.
// Tracing is on only while somebody listens.
func serveMonitor(dp *datapath.Datapath, ifname func(int) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := api.ParseMonitorFilter(r.URL.Query())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if dp == nil {
			http.Error(w, "the eBPF fast path is disabled: no datapath events", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		flusher, _ := w.(http.Flusher)
		if flusher != nil {
			flusher.Flush()
		}
		enc := json.NewEncoder(w)
		err = dp.Monitor(r.Context(), f.Types, 1, func(ev datapath.Event) {
			me := monitorEvent(ev, time.Now(), ifname)
			if !f.Match(me) {
				return
			}
			if enc.Encode(me) == nil && flusher != nil {
				flusher.Flush()
			}
		})
		if err != nil && !errors.Is(err, context.Canceled) {
			_ = enc.Encode(api.MonitorEvent{Error: err.Error()}) // the client may be gone
		}
	}
}

// monitorEvent translates a datapath event for the /v1/monitor stream.
func monitorEvent(ev datapath.Event, now time.Time, ifname func(int) string) api.MonitorEvent {
	me := api.MonitorEvent{
		Time: now, Type: ev.Type, CTVerdict: ev.CTVerdict, Reason: ev.Reason,
		IfIndex: ev.IfIndex, IfName: ifname(ev.IfIndex), Target: ev.Target, EndpointID: ev.EndpointID,
		Proto: ev.Proto, Src: ev.Src, Dst: ev.Dst, Len: ev.Len,
	}
	if ev.Target != 0 {
		me.TargetName = ifname(ev.Target)
	}
	if ev.IP != nil {
		ip := api.MonitorIP(*ev.IP)
		me.IP = &ip
	}
	if ev.TCP != nil {
		flags := []string{}
		for i, f := range api.TCPFlags {
			if ev.TCP.Flags&(1<<i) != 0 {
				flags = append(flags, f.Name)
			}
		}
		me.TCP = &api.MonitorTCP{Flags: flags, Seq: ev.TCP.Seq, Ack: ev.TCP.Ack, Window: ev.TCP.Window}
	}
	if ev.UDP != nil {
		udp := api.MonitorUDP(*ev.UDP)
		me.UDP = &udp
	}
	if ev.ICMP != nil {
		icmp := api.MonitorICMP(*ev.ICMP)
		me.ICMP = &icmp
	}
	return me
}

// ifName names an interface of this network namespace by its index.
func ifName(idx int) string {
	if ifi, err := net.InterfaceByIndex(idx); err == nil {
		return ifi.Name
	}
	return fmt.Sprintf("if%d", idx)
}
