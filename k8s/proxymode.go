package k8s

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// ProxyMode is kube-proxy's mode as it reports it on its metrics port
// (GET /proxyMode).
type ProxyMode string

// The modes kube-proxy reports.
const (
	ProxyModeIPTables    ProxyMode = "iptables"
	ProxyModeNFTables    ProxyMode = "nftables"
	ProxyModeIPVS        ProxyMode = "ipvs"
	ProxyModeKernelspace ProxyMode = "kernelspace" // Windows
)

// DefaultProxyModeURL is where kube-proxy serves its mode by default
// (metricsBindAddress 127.0.0.1:10249, in the node's network namespace).
const DefaultProxyModeURL = "http://127.0.0.1:10249/proxyMode"

// ErrProxyModeUnsupported is returned by ProxyMode.Supported for a mode
// whose translated flows podrouter's fast path cannot keep in netfilter.
var ErrProxyModeUnsupported = errors.New("kube-proxy mode not supported by the fast path")

// Supported reports whether podrouter's fast path is correct with kube-proxy
// in this mode: iptables and nftables translate in netfilter, where the fast
// path finds their connections. IPVS translates in the IPVS module, which
// this project cannot build or test (no CONFIG_IP_VS on its kernels), so it
// is reported as unsupported; the daemon must then keep Service traffic on
// the kernel path.
func (m ProxyMode) Supported() error {
	switch m {
	case ProxyModeIPTables, ProxyModeNFTables:
		return nil
	case ProxyModeIPVS:
		return fmt.Errorf("%w: ipvs (untested: no CONFIG_IP_VS here)", ErrProxyModeUnsupported)
	}
	return fmt.Errorf("%w: %q", ErrProxyModeUnsupported, string(m))
}

// maxProxyModeBody bounds what ProbeProxyMode reads.
const maxProxyModeBody = 64

// ProbeProxyMode asks kube-proxy for its mode at url (DefaultProxyModeURL
// when ""). c nil uses a client with a 2 s timeout. An error means no
// kube-proxy answered there (none runs, or it listens elsewhere); an
// answer that is not a single word is an error too.
func ProbeProxyMode(ctx context.Context, c *http.Client, url string) (ProxyMode, error) {
	if url == "" {
		url = DefaultProxyModeURL
	}
	if c == nil {
		c = &http.Client{Timeout: 2 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("kube-proxy mode: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("kube-proxy mode: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxProxyModeBody+1))
	if err != nil {
		return "", fmt.Errorf("kube-proxy mode: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("kube-proxy mode: %s: HTTP %d", url, resp.StatusCode)
	}
	m := strings.TrimSpace(string(b))
	if len(b) > maxProxyModeBody || m == "" || strings.ContainsAny(m, " \t\r\n") {
		return "", fmt.Errorf("kube-proxy mode: %s answered %q, not a mode", url, truncate(string(b), maxProxyModeBody))
	}
	return ProxyMode(m), nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
