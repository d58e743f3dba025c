//go:build linux

package promtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultBinary is Debian's Prometheus server.
const DefaultBinary = "/usr/bin/prometheus"

// Options tunes Start. The zero value scrapes every second from the root
// network namespace.
type Options struct {
	// Binary is the prometheus executable (default DefaultBinary).
	Binary string
	// NetNS, when set, names a network namespace (as for `ip netns exec`)
	// to run Prometheus in; queries are then dialled from inside it.
	NetNS string
	// ScrapeInterval defaults to 1s.
	ScrapeInterval time.Duration
	// Job is the scrape job name (default "podrouter").
	Job string
	// Dir holds config, storage and log (default: a new temporary
	// directory, removed by Stop).
	Dir string
	// StartTimeout bounds the wait for /-/ready (default 30s).
	StartTimeout time.Duration
}

// Server is a running Prometheus.
type Server struct {
	// URL is the base URL of the HTTP API, e.g. http://127.0.0.1:41234.
	URL string

	cmd     *exec.Cmd
	dir     string
	rmDir   bool
	client  *http.Client
	logPath string
	done    chan struct{}
	waitErr error
	stop    sync.Once
}

// Start writes a config scraping targets ("host:port", path /metrics) and
// starts Prometheus on 127.0.0.1 at a free port, waiting until it is ready.
func Start(ctx context.Context, targets []string, opts Options) (*Server, error) {
	if opts.Binary == "" {
		opts.Binary = DefaultBinary
	}
	if opts.ScrapeInterval <= 0 {
		opts.ScrapeInterval = time.Second
	}
	if opts.Job == "" {
		opts.Job = "podrouter"
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	if _, err := exec.LookPath(opts.Binary); err != nil {
		return nil, fmt.Errorf("prometheus binary: %w", err)
	}
	s := &Server{dir: opts.Dir, done: make(chan struct{})}
	if s.dir == "" {
		d, err := os.MkdirTemp("", "promtest-")
		if err != nil {
			return nil, err
		}
		s.dir, s.rmDir = d, true
	}
	fail := func(err error) (*Server, error) {
		s.Stop()
		return nil, err
	}
	cfgPath := filepath.Join(s.dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(renderConfig(opts, targets)), 0o644); err != nil {
		return fail(err)
	}
	dial, err := dialer(opts.NetNS)
	if err != nil {
		return fail(err)
	}
	s.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial}}
	port, err := freePort(opts.NetNS)
	if err != nil {
		return fail(err)
	}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.URL = "http://" + listen
	args := []string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + filepath.Join(s.dir, "data"),
		"--web.listen-address=" + listen,
		"--storage.tsdb.retention.time=1h",
		"--log.level=warn",
	}
	name := opts.Binary
	if opts.NetNS != "" {
		// ip execs the binary, so the child's pid is Prometheus's own.
		args = append([]string{"netns", "exec", opts.NetNS, opts.Binary}, args...)
		name = "ip"
	}
	s.logPath = filepath.Join(s.dir, "prometheus.log")
	logf, err := os.Create(s.logPath)
	if err != nil {
		return fail(err)
	}
	defer logf.Close()
	s.cmd = exec.Command(name, args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		s.cmd = nil
		return fail(fmt.Errorf("start prometheus: %w", err))
	}
	go func() { s.waitErr = s.cmd.Wait(); close(s.done) }()

	wctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(wctx, http.MethodGet, s.URL+"/-/ready", nil) // URL is well formed
		if resp, err := s.client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.done:
			return fail(fmt.Errorf("prometheus exited: %v\n%s", s.waitErr, s.Log()))
		case <-wctx.Done():
			return fail(fmt.Errorf("prometheus not ready within %s: %w\n%s", opts.StartTimeout, wctx.Err(), s.Log()))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func renderConfig(opts Options, targets []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n",
		opts.ScrapeInterval, opts.ScrapeInterval, opts.ScrapeInterval)
	fmt.Fprintf(&b, "scrape_configs:\n  - job_name: %q\n    static_configs:\n      - targets:\n", opts.Job)
	for _, t := range targets {
		fmt.Fprintf(&b, "          - %q\n", t)
	}
	return b.String()
}

// Log returns what Prometheus wrote to stdout and stderr so far.
func (s *Server) Log() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return ""
	}
	return string(b)
}

// Stop kills Prometheus (SIGTERM, SIGKILL after 5s), waits for it and
// removes the temporary directory. It is safe to call more than once.
func (s *Server) Stop() error {
	var err error
	s.stop.Do(func() {
		if s.cmd != nil {
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM) // fails only if already gone
			select {
			case <-s.done:
			case <-time.After(5 * time.Second):
				_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL) // fails only if already gone
				<-s.done
			}
		}
		if s.rmDir {
			err = os.RemoveAll(s.dir)
		}
	})
	return err
}

// Sample is one element of an instant-vector query result.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Query runs an instant query and returns the vector's samples.
func (s *Server) Query(ctx context.Context, expr string) ([]Sample, error) {
	u := s.URL + "/api/v1/query?" + url.Values{"query": {expr}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&r); err != nil {
		return nil, fmt.Errorf("query %q: decode %q: %w", expr, body, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %q: %s: %s", expr, r.Status, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %q: result type %s, want vector", expr, r.Data.ResultType)
	}
	out := make([]Sample, 0, len(r.Data.Result))
	for _, e := range r.Data.Result {
		str, ok := e.Value[1].(string)
		if !ok {
			return nil, fmt.Errorf("query %q: value %v is not a string", expr, e.Value[1])
		}
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: %w", expr, err)
		}
		out = append(out, Sample{Labels: e.Metric, Value: v})
	}
	return out, nil
}

// WaitFor polls expr every 500ms until it returns at least one sample or
// ctx ends.
func (s *Server) WaitFor(ctx context.Context, expr string) ([]Sample, error) {
	var last error
	for {
		res, err := s.Query(ctx, expr)
		if err == nil && len(res) > 0 {
			return res, nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(fmt.Errorf("no result for %q: %w", expr, ctx.Err()), last)
		case <-s.done:
			return nil, fmt.Errorf("prometheus exited: %v\n%s", s.waitErr, s.Log())
		case <-time.After(500 * time.Millisecond):
		}
	}
}
