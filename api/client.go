package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// Version is the local API's version, the first element of every path.
const Version = "v1"

// Paths of the local API.
const (
	PathStatus  = "/" + Version + "/status"
	PathDrain   = "/" + Version + "/drain"
	PathMonitor = "/" + Version + "/monitor"
)

// DefaultSocket is where the daemon serves the local API.
const DefaultSocket = "/run/podrouter/podrouter.sock"

// maxReply bounds a status or drain reply read by the client.
const maxReply = 16 << 20

// Client talks to a running daemon over its unix socket.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client for the daemon serving socket. It does no I/O.
func NewClient(socket string) *Client {
	return &Client{socket: socket, hc: &http.Client{
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}}
}

// ErrNotRunning wraps a failure to reach the daemon at all.
var ErrNotRunning = errors.New("is podrouter running?")

func (c *Client) do(ctx context.Context, method, path string, timeout time.Duration) (*http.Response, context.CancelFunc, error) {
	cancel := context.CancelFunc(func() {})
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://podrouter"+path, nil)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("%w %w", ErrNotRunning, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096)) // best effort: the status says enough
		resp.Body.Close()
		cancel()
		return nil, nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp, cancel, nil
}

// call makes one request and decodes its JSON reply (at most maxReply
// bytes) into a T; what names the reply in errors.
func call[T any](ctx context.Context, c *Client, method, path, what string) (T, error) {
	var v T
	resp, cancel, err := c.do(ctx, method, path, 10*time.Second)
	if err != nil {
		return v, err
	}
	defer cancel()
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxReply)).Decode(&v); err != nil {
		return v, fmt.Errorf("decode %s: %w", what, err)
	}
	return v, nil
}

// Status reads the daemon's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	return call[Status](ctx, c, http.MethodGet, PathStatus, "status")
}

// Drain asks the daemon to drain and exit; it answers before it starts.
func (c *Client) Drain(ctx context.Context) (DrainReply, error) {
	return call[DrainReply](ctx, c, http.MethodPost, PathDrain, "drain reply")
}

// WaitGone waits until the daemon has exited: its socket goes last.
func (c *Client) WaitGone(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if _, err := os.Stat(c.socket); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Monitor streams datapath events matching f until ctx ends or the
// daemon ends the stream, calling fn with each event and its JSON line.
func (c *Client) Monitor(ctx context.Context, f MonitorFilter, fn func(ev MonitorEvent, line []byte)) error {
	resp, cancel, err := c.do(ctx, http.MethodGet, PathMonitor+"?"+f.Query(), 0)
	if err != nil {
		return err
	}
	defer cancel()
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var ev MonitorEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return fmt.Errorf("monitor: undecodable event %.200q: %w", line, err)
		}
		if ev.Error != "" {
			return fmt.Errorf("monitor: %s", ev.Error)
		}
		fn(ev, line)
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}
