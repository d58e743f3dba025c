package k8s

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
)

// CNINetworkName is the network name in the conflist podrouter writes.
const CNINetworkName = "podrouter"

// CNIConfig is the node's CNI conflist: the standard ptp plugin with
// host-local IPAM over the node's pod CIDRs. ptp gives every pod a veth
// whose host side carries a /32 (/128) route, which is how the datapath
// discovers endpoints.
type CNIConfig struct {
	PodCIDRs []netip.Prefix
	MTU      int    // 0: leave ptp's default
	DataDir  string // host-local's state; "": its default, /var/lib/cni/networks
}

// Render returns the conflist bytes (deterministic: equal input, equal bytes).
func (c CNIConfig) Render() ([]byte, error) {
	if len(c.PodCIDRs) == 0 {
		return nil, errors.New("cni conflist: no pod CIDRs")
	}
	type rng struct {
		Subnet string `json:"subnet"`
	}
	type route struct {
		Dst string `json:"dst"`
	}
	var ranges [][]rng
	var routes []route
	for _, p := range c.PodCIDRs {
		ranges = append(ranges, []rng{{Subnet: p.String()}})
		if p.Addr().Is4() {
			routes = append(routes, route{Dst: "0.0.0.0/0"})
		} else {
			routes = append(routes, route{Dst: "::/0"})
		}
	}
	type ipam struct {
		Type    string  `json:"type"`
		DataDir string  `json:"dataDir,omitempty"`
		Ranges  [][]rng `json:"ranges"`
		Routes  []route `json:"routes"`
	}
	type plugin struct {
		Type   string `json:"type"`
		MTU    int    `json:"mtu,omitempty"`
		IPMasq bool   `json:"ipMasq"`
		IPAM   ipam   `json:"ipam"`
	}
	doc := struct {
		CNIVersion string   `json:"cniVersion"`
		Name       string   `json:"name"`
		Plugins    []plugin `json:"plugins"`
	}{
		CNIVersion: "1.0.0",
		Name:       CNINetworkName,
		Plugins: []plugin{{
			Type: "ptp", MTU: c.MTU, IPMasq: false,
			IPAM: ipam{Type: "host-local", DataDir: c.DataDir, Ranges: ranges, Routes: routes},
		}},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// WriteFileIfChanged writes b to path atomically (temp file in the same
// directory, fsync, rename) unless the file already holds exactly b. It
// reports whether it wrote.
func WriteFileIfChanged(path string, b []byte, perm os.FileMode) (bool, error) {
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, b) {
		return false, nil
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	// The temp name must not end in .conf/.conflist/.json, or a runtime
	// scanning the directory could load a half-written file.
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := f.Write(b); err != nil {
		f.Close()
		return false, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Close(); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, err
	}
	return true, nil
}

// RemoveCNIConfig removes the conflist at path if it is podrouter's (its
// network is CNINetworkName), for an uninstall: a conflist someone else
// wrote there, or none, is left alone. It reports whether it removed one.
// The read is bounded: a conflist is small.
func RemoveCNIConfig(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	f.Close()
	if err != nil {
		return false, err
	}
	var doc struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.Name != CNINetworkName {
		return false, nil // not ours
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	return true, nil
}

// uplinkMTU is the MTU of the named interface (0 when name is empty).
func uplinkMTU(name string) (int, error) {
	if name == "" {
		return 0, nil
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, fmt.Errorf("uplink %s: %w", name, err)
	}
	return ifi.MTU, nil
}
