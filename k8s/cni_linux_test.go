package k8s

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"
)

// netnsExec runs a CNI plugin inside a network namespace (as a runtime on
// that "node" would), via `ip netns exec`.
type netnsExec struct {
	ns string
	*invoke.RawExec
	version.PluginDecoder
}

func (e *netnsExec) ExecPlugin(ctx context.Context, plugin string, stdin []byte, env []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", e.ns, plugin)
	cmd.Env, cmd.Stdin = env, bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %v: %s %s", filepath.Base(plugin), err, out.String(), errb.String())
	}
	return out.Bytes(), nil
}

// TestCNIConfigWithRealPlugins runs CNI ADD and DEL with the conflist the
// adapter writes and Debian's ptp and host-local plugins, in a fresh "node"
// and "pod" namespace pair, and checks what the datapath relies on: the
// pod gets one address per pod CIDR, and the node a /32 and /128 route to
// it over a veth.
func TestCNIConfigWithRealPlugins(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces); CI runs as root")
	}
	const pluginDir = "/usr/lib/cni"
	if _, err := os.Stat(filepath.Join(pluginDir, "ptp")); err != nil {
		t.Fatalf("CNI plugins missing (Debian containernetworking-plugins, make deps): %v", err)
	}
	id := rand.IntN(100000)
	node, pod := fmt.Sprintf("k8scni-n%d", id), fmt.Sprintf("k8scni-p%d", id)
	for _, ns := range []string{node, pod} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v %s", ns, err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v %s", ns, err, out)
			}
		})
	}
	if out, err := exec.Command("ip", "-n", node, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	dir := t.TempDir()
	v4, v6 := netip.MustParsePrefix("10.250.7.0/24"), netip.MustParsePrefix("fd00:250:7::/64")
	b, err := CNIConfig{PodCIDRs: []netip.Prefix{v4, v6}, MTU: 1400, DataDir: filepath.Join(dir, "ipam")}.Render()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "net.d", "10-podrouter.conflist")
	if _, err := WriteFileIfChanged(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	list, err := libcni.ConfListFromFile(path)
	if err != nil {
		t.Fatalf("a runtime could not load the conflist: %v", err)
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{pluginDir}, filepath.Join(dir, "cache"), &netnsExec{ns: node, RawExec: &invoke.RawExec{}})
	rt := &libcni.RuntimeConf{ContainerID: pod, NetNS: "/run/netns/" + pod, IfName: "eth0"}
	ctx := context.Background()
	if _, err := cni.AddNetworkList(ctx, list, rt); err != nil {
		t.Fatalf("cni add: %v", err)
	}
	addrs, _ := exec.Command("ip", "-n", pod, "-o", "addr", "show", "dev", "eth0").CombinedOutput() // checked below
	var got []netip.Addr
	for _, f := range strings.Fields(string(addrs)) {
		if p, err := netip.ParsePrefix(f); err == nil && (v4.Contains(p.Addr()) || v6.Contains(p.Addr())) {
			got = append(got, p.Addr())
		}
	}
	if len(got) != 2 {
		t.Fatalf("pod addresses in the pod CIDRs: %v\n%s", got, addrs)
	}
	mtu, _ := exec.Command("ip", "-n", pod, "-o", "link", "show", "dev", "eth0").CombinedOutput() // checked below
	if !strings.Contains(string(mtu), "mtu 1400") {
		t.Errorf("pod eth0 MTU: %s", mtu)
	}
	for _, a := range got {
		fam := "-4"
		if a.Is6() {
			fam = "-6"
		}
		out, _ := exec.Command("ip", fam, "-n", node, "route", "show", a.String()).CombinedOutput() // checked below
		if !strings.Contains(string(out), a.String()+" dev veth") {
			t.Errorf("node has no host route to the pod's %s over a veth: %q", a, out)
		}
	}
	if err := cni.DelNetworkList(ctx, list, rt); err != nil {
		t.Errorf("cni del: %v", err)
	}
}
