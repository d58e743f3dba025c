package lab

import (
	"net/netip"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func testNodeRuntime() NodeRuntime {
	return NodeRuntime{
		Node: "node1", NetNS: "lab-n1",
		Dir: "/run/podrouter-lab/lab/node1/runtime", DataDir: "/var/lib/podrouter-lab/lab/node1",
		Cgroup: "/podrouter-lab-lab/node1", BindBack: "/run/podrouter-lab/lab",
		SandboxImage: "localhost/podrouter/pause:1", Images: []string{"/src/out/pause-image.tar"},
		Kubelet: KubeletSpec{Bin: "/src/bin/kubelet", Kubeconfig: "/run/podrouter-lab/lab/node1/kube/kubelet.kubeconfig",
			ClientCAFile: "/run/podrouter-lab/lab/kube/pki/ca.crt",
			NodeIPs:      []netip.Addr{netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("fd00:1:1::2")},
			Labels:       map[string]string{"b": "2", "a": "1"}},
	}
}

func TestNodeRuntimeValidate(t *testing.T) {
	if err := testNodeRuntime().Validate(); err != nil {
		t.Fatal(err)
	}
	for what, mut := range map[string]func(*NodeRuntime){
		"node name":        func(r *NodeRuntime) { r.Node = "Node_1" },
		"netns path":       func(r *NodeRuntime) { r.NetNS = "/run/netns/x" },
		"relative dir":     func(r *NodeRuntime) { r.Dir = "state" },
		"dir under /run":   func(r *NodeRuntime) { r.BindBack = "" },
		"bind-back":        func(r *NodeRuntime) { r.BindBack = "/tmp/x" },
		"data under /run":  func(r *NodeRuntime) { r.DataDir = "/run/data" },
		"cgroup root":      func(r *NodeRuntime) { r.Cgroup = "/" },
		"cgroup relative":  func(r *NodeRuntime) { r.Cgroup = "lab/node1" },
		"no sandbox image": func(r *NodeRuntime) { r.SandboxImage = "" },
		"no images":        func(r *NodeRuntime) { r.Images = nil },
		"no node IP":       func(r *NodeRuntime) { r.Kubelet.NodeIPs = nil },
		"relative kubelet": func(r *NodeRuntime) { r.Kubelet.Bin = "kubelet" },
	} {
		r := testNodeRuntime()
		mut(&r)
		if err := r.Validate(); err == nil {
			t.Errorf("%s: no error", what)
		}
	}
}

// TestNodeRuntimeConfigs: the settings the machine needs (NOTES.md, "A
// real cluster on these machines") are in the rendered configs.
func TestNodeRuntimeConfigs(t *testing.T) {
	r := testNodeRuntime()
	cd, err := r.containerdConfig()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`root = "/var/lib/podrouter-lab/lab/node1/containerd"`, `state = "/run/containerd"`,
		`address = "/run/containerd/containerd.sock"`, `sandbox_image = "localhost/podrouter/pause:1"`,
		`restrict_oom_score_adj = true`, `snapshotter = "overlayfs"`, `SystemdCgroup = false`,
		`bin_dir = "/usr/lib/cni"`, `conf_dir = "/etc/cni/net.d"`,
	} {
		if !strings.Contains(string(cd), want) {
			t.Errorf("containerd config lacks %s", want)
		}
	}
	kc, err := r.kubeletConfig()
	if err != nil {
		t.Fatal(err)
	}
	var k map[string]any
	if err := yaml.Unmarshal(kc, &k); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{
		"failCgroupV1": false, "cgroupDriver": "cgroupfs", "cgroupRoot": "/podrouter-lab-lab/node1",
		"address": "192.168.1.1", "readOnlyPort": float64(0), "healthzBindAddress": "127.0.0.1",
		"podLogsDir":               "/var/lib/podrouter-lab/lab/node1/pod-logs",
		"containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
	} {
		if k[key] != want {
			t.Errorf("kubelet config %s = %v, want %v", key, k[key], want)
		}
	}
	args := strings.Join(r.kubeletArgs(), " ")
	for _, want := range []string{"--root-dir /var/lib/podrouter-lab/lab/node1/kubelet", "--hostname-override node1",
		"--node-ip 192.168.1.1,fd00:1:1::2", "--node-labels a=1,b=2"} {
		if !strings.Contains(args, want) {
			t.Errorf("kubelet args %q lack %q", args, want)
		}
	}
}
