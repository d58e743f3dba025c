package lab

import (
	"fmt"
	"net/netip"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/template"
)

// A node runtime makes a lab node a Kubernetes node the way a machine is
// one: containerd + runc + the real kubelet, each node with its own. The
// processes of a node share one network namespace (the node's), one mount
// namespace and one UTS namespace (hostname = node name), held by a
// long-running "holder" process; containerd and the kubelet are entered
// into all three with nsenter. In the node's mount namespace:
//
//	/run            <- <runtime dir>/run    (containerd's state and socket,
//	                   the runc shims, pod netns mounts, /run/podrouter)
//	/sys/fs/bpf     a bpffs of the node's own
//	/etc/cni/net.d  <- <runtime dir>/cni-conf (the conflist podrouter writes)
//	/var/lib/cni    <- <runtime dir>/cni-lib  (host-local IPAM state)
//
// The node's mounts are shared among themselves (CRI refuses a
// HostToContainer mount of a private one) and private to the host; the
// lab's state directory, when it is under /run, is bound back so paths in
// the configs stay valid inside. containerd's root, the kubelet's
// --root-dir and the pod logs are under the data directory, on a disk file
// system (cadvisor finds no device for overlayfs or tmpfs). Each node has
// its own cgroup (the kubelet's cgroupRoot; containerd and the kubelet run
// in <cgroup>/runtime), created in every cgroup v1 hierarchy. Nothing of a
// node is shared with another node: not its cgroups, mounts, CNI
// directories, /run or runtime state.
//
// Not isolated, because the machine has one of each: the kernel's global
// sysctls (the kubelet sets six at start; see kubeletSysctls for how they
// are restored), /sys (the host's sysfs: /sys/class/net lists the host's
// interfaces, and containers get their own), /etc and /tmp.

// SandboxImage is the pod sandbox image of every lab node's containerd:
// tools/pause from `make pause-image`, imported from SandboxImageArchive.
const (
	SandboxImage        = "localhost/podrouter/pause:1"
	SandboxImageArchive = "pause-image.tar"
	// LabImageArchive is `make lab-image`: with it among the images and an
	// overlay installed, the lab runs its echo workload (manifests/echo.yaml).
	LabImageArchive = "lab-image.tar"
)

// CNIPluginDir is where Debian's containernetworking-plugins lives.
const CNIPluginDir = "/usr/lib/cni"

// NodeRuntime describes one node's runtime. Paths are host paths.
type NodeRuntime struct {
	// Node is the node's name and hostname ("node1").
	Node string
	// NetNS is the node's network namespace (under /run/netns; must exist).
	NetNS string
	// Dir holds its configs, pidfiles and logs, and the directories bound
	// at the node's /run, /etc/cni/net.d and /var/lib/cni.
	Dir string
	// DataDir holds containerd's root, the kubelet's root-dir and the pod
	// logs: on a disk file system (ext4), not tmpfs or overlayfs.
	DataDir string
	// Cgroup is the node's cgroup, the kubelet's cgroupRoot
	// ("/podrouter-lab-lab/node1").
	Cgroup string
	// BindBack is a host directory under /run (the lab's state directory)
	// bound at the same path inside the node, over the node's own /run.
	BindBack string
	// SandboxImage is containerd's sandbox_image (the pause image, one of
	// Images: nothing is pulled).
	SandboxImage string
	// Images are image archives imported into the node's containerd
	// (namespace k8s.io) before the kubelet starts.
	Images []string
	// Kubelet is the node's kubelet.
	Kubelet KubeletSpec
}

// KubeletSpec is what a node's kubelet needs from its cluster.
type KubeletSpec struct {
	// Bin is the kubelet binary (`make kube`: bin/kubelet).
	Bin string
	// Kubeconfig authenticates the kubelet to the API server, as
	// system:node:<name> in group system:nodes.
	Kubeconfig string
	// ClientCAFile verifies the clients that call the kubelet's API (the
	// API server's kubelet client certificate, for logs and exec).
	ClientCAFile string
	// NodeIPs are the Node's InternalIPs (one per family); the kubelet
	// serves on the first.
	NodeIPs []netip.Addr
	// Labels are the Node's labels at registration.
	Labels map[string]string
}

// Files of a node runtime.
func (r NodeRuntime) path(name string) string     { return filepath.Join(r.Dir, name) }
func (r NodeRuntime) dataPath(name string) string { return filepath.Join(r.DataDir, name) }

// RunDir is the host directory that is /run in the node.
func (r NodeRuntime) RunDir() string { return r.path("run") }

// CNIConfDir is the host directory that is /etc/cni/net.d in the node.
func (r NodeRuntime) CNIConfDir() string { return r.path("cni-conf") }

// CNILibDir is the host directory that is /var/lib/cni in the node.
func (r NodeRuntime) CNILibDir() string { return r.path("cni-lib") }

// KubeletRootDir is the kubelet's --root-dir.
func (r NodeRuntime) KubeletRootDir() string { return r.dataPath("kubelet") }

// PodLogsDir is the kubelet's podLogsDir (what /var/log/pods is on a
// machine).
func (r NodeRuntime) PodLogsDir() string { return r.dataPath("pod-logs") }

// RuntimeCgroup is where the holder, containerd and the kubelet run.
func (r NodeRuntime) RuntimeCgroup() string { return path.Join(r.Cgroup, "runtime") }

var cgroupRE = regexp.MustCompile(`^(/[a-zA-Z0-9_.-]+)+$`)

// Validate checks what would otherwise fail late or in an odd place.
func (r NodeRuntime) Validate() error {
	if !nodeNameRE.MatchString(r.Node) {
		return fmt.Errorf("node runtime: node name %q: want a DNS label", r.Node)
	}
	if r.NetNS == "" || strings.ContainsRune(r.NetNS, '/') {
		return fmt.Errorf("node runtime %s: network namespace %q: want a name under /run/netns", r.Node, r.NetNS)
	}
	for what, p := range map[string]string{"dir": r.Dir, "data dir": r.DataDir, "kubelet": r.Kubelet.Bin,
		"kubeconfig": r.Kubelet.Kubeconfig, "client CA": r.Kubelet.ClientCAFile} {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("node runtime %s: %s %q is not an absolute path", r.Node, what, p)
		}
	}
	if r.BindBack != "" && !strings.HasPrefix(r.BindBack, "/run/") {
		return fmt.Errorf("node runtime %s: bind-back %q is not under /run", r.Node, r.BindBack)
	}
	for what, p := range map[string]string{"dir": r.Dir, "data dir": r.DataDir} {
		if underRun(p) && (r.BindBack == "" || !strings.HasPrefix(p+"/", r.BindBack+"/")) {
			return fmt.Errorf("node runtime %s: %s %s is under /run, which the node replaces: set a bind-back directory above it", r.Node, what, p)
		}
	}
	if !cgroupRE.MatchString(r.Cgroup) || r.Cgroup == "/" {
		return fmt.Errorf("node runtime %s: cgroup %q: want /name[/name...]", r.Node, r.Cgroup)
	}
	if r.SandboxImage == "" || len(r.Images) == 0 {
		return fmt.Errorf("node runtime %s: a sandbox image and the image archives are required (nothing is pulled)", r.Node)
	}
	if len(r.Kubelet.NodeIPs) == 0 {
		return fmt.Errorf("node runtime %s: no node IP", r.Node)
	}
	return nil
}

var nodeNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// holderScript runs in the node's new mount and UTS namespaces (already
// in its network namespace) and ends as `sleep infinity`, the holder. Its
// arguments: $1 runtime dir, $2 node name, $3 bind-back dir or "". Every
// mount is made private first, so nothing reaches the host; once the
// node's own are in place, all are made shared, each in a peer group of
// its own within the node (the kubelet's HostToContainer mounts need
// that; a bind made under an already shared / would join /'s peer group
// and mirror every container mount a second time).
const holderScript = `set -eu
mount --make-rprivate /
if [ -n "$3" ]; then exec 3<"$3"; fi
mkdir -p /etc/cni/net.d /var/lib/cni
mount --bind "$1/run" /run
if [ -n "$3" ]; then mkdir -p "$3"; mount --no-canonicalize --bind /proc/self/fd/3 "$3"; exec 3<&-; fi
mount -t bpf -o mode=0700 bpf /sys/fs/bpf
mount --bind "$1/cni-conf" /etc/cni/net.d
mount --bind "$1/cni-lib" /var/lib/cni
mount --make-rshared /
hostname "$2"
exec sleep infinity
`

// inCgroupScript moves itself into a cgroup (one cgroup.procs file per
// hierarchy, given as $1, space separated) and execs the rest of its
// arguments, so that what it runs and every child starts there.
const inCgroupScript = `for f in $1; do echo $$ > "$f"; done; shift; exec "$@"`

// containerdData renders a node's containerd config.
type containerdData struct {
	Root, SandboxImage, CNIBinDir string
}

// containerd 1.6 (config version 2), for one node: state and socket in
// the node's /run, CRI with runc (cgroupfs) and the overlayfs snapshotter,
// CNI from Debian's plugins and the node's /etc/cni/net.d. Root lacks
// CAP_SYS_RESOURCE on these machines, so runc cannot set a negative
// oom_score_adj (every sandbox failed with "can't get final child's PID
// from pipe: EOF"): restrict_oom_score_adj caps it at containerd's own.
// Nothing is pulled: the sandbox image is imported like every other.
var containerdTmpl = template.Must(template.New("containerd").Parse(`# rendered by podrouter lab
version = 2
root = "{{.Root}}"
state = "/run/containerd"
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{{.SandboxImage}}"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{{.CNIBinDir}}"
    conf_dir = "/etc/cni/net.d"
`))

// kubeletData renders a node's KubeletConfiguration.
type kubeletData struct {
	Address, ClientCAFile, CgroupRoot, PodLogsDir, VolumePluginDir string
}

// The kubelet of a lab node. cgroup v1 is refused unless failCgroupV1 is
// false; containerd 1.6 has no RuntimeConfig call, so the driver is said
// to be cgroupfs here. Authentication and authorization as a cluster does
// it (x509 from the cluster CA, webhook to the API server); the read-only
// port is off; healthz on the node's own loopback. Image GC and eviction
// thresholds are lowered: the three nodes see the machine's one disk, and
// a busy machine must not evict the lab's pods or remove its images
// (nothing could pull them back). No cluster DNS runs in the lab.
var kubeletTmpl = template.Must(template.New("kubelet").Parse(`# rendered by podrouter lab
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: {{.CgroupRoot}}
cgroupsPerQOS: true
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
address: {{.Address}}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: {{.ClientCAFile}}
authorization:
  mode: Webhook
clusterDomain: cluster.local
podLogsDir: {{.PodLogsDir}}
volumePluginDir: {{.VolumePluginDir}}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
`))

func (r NodeRuntime) containerdConfig() ([]byte, error) {
	return render(containerdTmpl, containerdData{Root: r.dataPath("containerd"), SandboxImage: r.SandboxImage, CNIBinDir: CNIPluginDir})
}

func (r NodeRuntime) kubeletConfig() ([]byte, error) {
	return render(kubeletTmpl, kubeletData{
		Address: r.Kubelet.NodeIPs[0].String(), ClientCAFile: r.Kubelet.ClientCAFile, CgroupRoot: r.Cgroup,
		PodLogsDir: r.PodLogsDir(), VolumePluginDir: r.dataPath("volume-plugins"),
	})
}

// kubeletArgs is the kubelet's command line (after the binary).
func (r NodeRuntime) kubeletArgs() []string {
	var ips []string
	for _, ip := range r.Kubelet.NodeIPs {
		ips = append(ips, ip.String())
	}
	args := []string{
		"--config", r.path("kubelet.yaml"),
		"--kubeconfig", r.Kubelet.Kubeconfig,
		"--root-dir", r.KubeletRootDir(),
		"--hostname-override", r.Node,
		"--node-ip", strings.Join(ips, ","),
		"--v", "1",
	}
	if len(r.Kubelet.Labels) > 0 {
		var ls []string
		for k, v := range r.Kubelet.Labels {
			ls = append(ls, k+"="+v)
		}
		slices.Sort(ls)
		args = append(args, "--node-labels", strings.Join(ls, ","))
	}
	return args
}

func underRun(p string) bool {
	return p == "/run" || strings.HasPrefix(p, "/run/") || strings.HasPrefix(p, "/var/run/")
}
