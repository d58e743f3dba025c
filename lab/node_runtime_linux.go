package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// nodeRuntimeBinaries are what a node runtime runs besides the kubelet.
var nodeRuntimeBinaries = []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "nsenter", "unshare"}

// StartNodeRuntime brings node r up as a Kubernetes node: the holder of
// its mount and UTS namespaces, its cgroup, containerd (images imported),
// then the kubelet, which registers the Node. It returns once the kubelet
// runs; the Node's registration and readiness are for the caller to wait
// for (Lab.waitNodeRegistered does). On failure it leaves what it started
// for the caller's teardown, which finds everything by name.
func StartNodeRuntime(ctx context.Context, r NodeRuntime, log *slog.Logger) error {
	if err := r.Validate(); err != nil {
		return err
	}
	for _, b := range nodeRuntimeBinaries {
		if _, err := exec.LookPath(b); err != nil {
			return fmt.Errorf("node runtime: %s not found: install Debian's containerd and runc (make deps)", b)
		}
	}
	if _, err := os.Stat(r.Kubelet.Bin); err != nil {
		return fmt.Errorf("node runtime: kubelet %s missing: run `make kube` (~20 min cold, cached per machine)", r.Kubelet.Bin)
	}
	for _, img := range r.Images {
		if _, err := os.Stat(img); err != nil {
			return fmt.Errorf("node runtime: image archive: %w (make image pause-image)", err)
		}
	}
	log = log.With("node", r.Node)
	start := time.Now()
	for _, d := range []string{r.RunDir(), r.CNIConfDir(), r.CNILibDir(), r.DataDir, r.KubeletRootDir(), r.PodLogsDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := ensureCgroup(r.RuntimeCgroup()); err != nil {
		return err
	}
	holder, err := r.startHolder(ctx)
	if err != nil {
		return err
	}
	if err := r.startContainerd(ctx, holder); err != nil {
		return err
	}
	if err := r.importImages(ctx); err != nil {
		return err
	}
	if err := acquireKubeletSysctls(r.Dir); err != nil {
		return err
	}
	if err := r.startKubelet(holder); err != nil {
		return err
	}
	log.Info("node runtime started", "holder", holder, "elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}

// HolderPID is the pid of the process holding the node's namespaces.
func (r NodeRuntime) HolderPID() (int, error) {
	pid, err := readPid(r.path("holder.pid"))
	if err != nil {
		return 0, err
	}
	if pid == 0 || !alive(pid) {
		return 0, fmt.Errorf("node %s: no holder running", r.Node)
	}
	return pid, nil
}

// Exec runs argv in the node as its containerd and kubelet run: in its
// network, mount and UTS namespaces. It returns stdout; the error carries
// stderr.
func (r NodeRuntime) Exec(ctx context.Context, argv ...string) (string, error) {
	pid, err := r.HolderPID()
	if err != nil {
		return "", err
	}
	return run(ctx, nil, "nsenter", append([]string{"-t", strconv.Itoa(pid), "-m", "-n", "-u", "--"}, argv...)...)
}

// startHolder starts `sleep infinity` in a new mount and UTS namespace
// inside the node's network namespace, after holderScript has made the
// node's mounts, and waits until it is there.
func (r NodeRuntime) startHolder(ctx context.Context) (int, error) {
	nsPath := filepath.Join(netnsDir, r.NetNS)
	if _, err := os.Stat(nsPath); err != nil {
		return 0, fmt.Errorf("node %s: network namespace: %w", r.Node, err)
	}
	// nsenter, not `ip netns exec`: that remounts /sys, and the cgroup
	// hierarchies mounted under it vanish from the node's view.
	argv := []string{"nsenter", "--net=" + nsPath, "--",
		"sh", "-c", inCgroupScript, "sh", cgroupProcsFiles(r.RuntimeCgroup()),
		"unshare", "--mount", "--uts", "--propagation", "unchanged", "--",
		"sh", "-c", holderScript, "holder", r.Dir, r.Node, r.BindBack}
	pid, err := startProcess(argv, r.path("holder.log"), r.path("holder.pid"))
	if err != nil {
		return 0, err
	}
	self, _ := os.Readlink("/proc/self/ns/mnt") // our own: the holder's must differ
	deadline := time.Now().Add(10 * time.Second)
	for {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)) // gone: checked below
		mnt, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		if strings.TrimSpace(string(comm)) == "sleep" && mnt != self {
			return pid, nil
		}
		if !alive(pid) {
			return 0, fmt.Errorf("node %s: setting up its namespaces failed: %s", r.Node, tail(r.path("holder.log"), 10))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, fmt.Errorf("node %s: holder not ready after 10s: %s", r.Node, tail(r.path("holder.log"), 10))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startInNode starts argv detached in the node's namespaces and its
// runtime cgroup, output to logPath, pid to pidPath.
func (r NodeRuntime) startInNode(holder int, argv []string, logPath, pidPath string) (int, error) {
	full := append([]string{"nsenter", "-t", strconv.Itoa(holder), "-m", "-n", "-u", "--",
		"sh", "-c", inCgroupScript, "sh", cgroupProcsFiles(r.RuntimeCgroup())}, argv...)
	return startProcess(full, logPath, pidPath)
}

func (r NodeRuntime) startContainerd(ctx context.Context, holder int) error {
	conf, err := r.containerdConfig()
	if err != nil {
		return err
	}
	confPath := r.path("containerd.toml")
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		return err
	}
	pid, err := r.startInNode(holder, []string{"containerd", "--config", confPath}, r.path("containerd.log"), r.path("containerd.pid"))
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, verr := r.Exec(ctx, "ctr", "version")
		if verr == nil {
			return nil
		}
		if !alive(pid) || time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("node %s: containerd not up: %v\n%s", r.Node, verr, tail(r.path("containerd.log"), 15))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// importImages imports every archive into the k8s.io namespace (the
// CRI's), unpacked for the overlayfs snapshotter.
func (r NodeRuntime) importImages(ctx context.Context) error {
	for _, img := range r.Images {
		if _, err := r.Exec(ctx, "ctr", "-n", "k8s.io", "images", "import", img); err != nil {
			return fmt.Errorf("node %s: import %s: %w", r.Node, img, err)
		}
	}
	return nil
}

func (r NodeRuntime) startKubelet(holder int) error {
	conf, err := r.kubeletConfig()
	if err != nil {
		return err
	}
	if err := os.WriteFile(r.path("kubelet.yaml"), conf, 0o644); err != nil {
		return err
	}
	_, err = r.startInNode(holder, append([]string{r.Kubelet.Bin}, r.kubeletArgs()...), r.path("kubelet.log"), r.path("kubelet.pid"))
	return err
}

// Cgroups. The machine has cgroup v1 hierarchies (one per controller,
// plus name=systemd) and an empty unified one, all under /sys/fs/cgroup.

const cgroupFS = "/sys/fs/cgroup"

// cgroupHierarchies lists the mounted hierarchies (directories under
// /sys/fs/cgroup that are cgroup file systems).
func cgroupHierarchies() ([]string, error) {
	ents, err := os.ReadDir(cgroupFS)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		p := filepath.Join(cgroupFS, e.Name())
		var st syscall.Statfs_t
		if err := syscall.Statfs(p, &st); err != nil || e.Type()&os.ModeSymlink != 0 {
			continue
		}
		if st.Type == 0x27e0eb /* CGROUP_SUPER_MAGIC */ || st.Type == 0x63677270 /* CGROUP2_SUPER_MAGIC */ {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no cgroup hierarchy mounted under %s", cgroupFS)
	}
	return out, nil
}

// cgroupProcsFiles is the cgroup.procs file of cgroup in every hierarchy,
// space separated (for inCgroupScript).
func cgroupProcsFiles(cgroup string) string {
	hs, _ := cgroupHierarchies() // none: ensureCgroup failed before
	var fs []string
	for _, h := range hs {
		fs = append(fs, filepath.Join(h, cgroup, "cgroup.procs"))
	}
	return strings.Join(fs, " ")
}

// ensureCgroup creates cgroup (and its parents) in every hierarchy. A new
// cpuset cgroup has no CPUs or memory nodes until given its parent's.
func ensureCgroup(cgroup string) error {
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		p := filepath.Join(h, cgroup)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("cgroup %s: %w", p, err)
		}
		if filepath.Base(h) != "cpuset" {
			continue
		}
		// Every level from the hierarchy down, parents first.
		rel := strings.Split(strings.Trim(cgroup, "/"), "/")
		dir := h
		for _, c := range rel {
			parent := dir
			dir = filepath.Join(dir, c)
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				cur, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil {
					return err
				}
				if strings.TrimSpace(string(cur)) != "" {
					continue
				}
				v, err := os.ReadFile(filepath.Join(parent, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
					return fmt.Errorf("%s: %w", filepath.Join(dir, f), err)
				}
			}
		}
	}
	return nil
}

// removeCgroup kills every process in the tree of cgroup, in every
// hierarchy, and removes it, children first. Killing repeats until the
// tree is empty: a process may fork while it is being killed.
func removeCgroup(ctx context.Context, cgroup string) error {
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range hs {
		root := filepath.Join(h, cgroup)
		if _, err := os.Stat(root); errors.Is(err, os.ErrNotExist) {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error { // errors: a cgroup vanished meanwhile
			if err == nil && e.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			deadline := time.Now().Add(10 * time.Second)
			for {
				b, _ := os.ReadFile(filepath.Join(dirs[i], "cgroup.procs")) // gone: nothing left
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
						_ = syscall.Kill(pid, syscall.SIGKILL) // ESRCH: gone meanwhile
					}
				}
				err := os.Remove(dirs[i])
				if err == nil || errors.Is(err, os.ErrNotExist) {
					break
				}
				if time.Now().After(deadline) || ctx.Err() != nil {
					errs = append(errs, fmt.Errorf("cgroup %s: %w", dirs[i], err))
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	return errors.Join(errs...)
}
