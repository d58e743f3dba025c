package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/podrouter/podrouter/k8s"
)

// The node is the pod's "host", so every plugin must run in the node's
// namespace. nsExec does that by executing the plugin as
// `ip netns exec NODE plugin`: the plugin is a fresh process that lives
// entirely in the node namespace (all its threads, its /sys view and the
// host-local IPAM plugin it execs), and no thread of this Go process ever
// changes namespace. Locking an OS thread and calling setns around libcni
// would also work for the netns, but leaves /sys pointing at the caller's
// namespace and ties correctness to which thread os/exec forks from.
type nsExec struct {
	ns string
	*invoke.RawExec
	version.PluginDecoder
}

func newNSExec(ns string) *nsExec {
	return &nsExec{ns: ns, RawExec: &invoke.RawExec{Stderr: os.Stderr}}
}

// ExecPlugin implements invoke.Exec.
func (e *nsExec) ExecPlugin(ctx context.Context, pluginPath string, stdinData []byte, environ []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", e.ns, pluginPath)
	cmd.Env = environ
	cmd.Stdin = bytes.NewReader(stdinData)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		// A plugin reports failures as a CNI error object on stdout.
		var perr types.Error
		if json.Unmarshal(stdout.Bytes(), &perr) == nil && perr.Msg != "" {
			return nil, &perr
		}
		return nil, fmt.Errorf("%s in %s: %w: %s", filepath.Base(pluginPath), e.ns, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// podNet is node n's CNI setup: the conflist a runtime would load and a
// libcni client with a per-node cache directory.
type podNet struct {
	cni  *libcni.CNIConfig
	list *libcni.NetworkConfigList
}

func (s Spec) nodeCNIDir(n int) string { return filepath.Join(s.StateDir(), NodeName(n), "cni") }

// writeCNIConf writes node n's conflist; Down reads it back for DEL.
func (s Spec) writeCNIConf(n int) error {
	b, err := s.cniConfList(n)
	if err != nil {
		return err
	}
	dir := s.nodeCNIDir(n)
	if err := os.MkdirAll(filepath.Join(dir, "ipam"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, k8s.CNINetworkName+".conflist"), b, 0o644)
}

// loadPodNet loads node n's conflist: the lab's own, or with Kubernetes
// the one podrouter wrote from the Node's pod CIDRs.
func (s Spec) loadPodNet(n int) (*podNet, error) {
	dir := s.nodeCNIDir(n)
	path := filepath.Join(dir, k8s.CNINetworkName+".conflist")
	if s.Kubernetes {
		path = s.k8sCNIConfList(n)
	}
	list, err := libcni.ConfListFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("load conflist of %s: %w", NodeName(n), err)
	}
	c := libcni.NewCNIConfigWithCacheDir([]string{CNIPluginDir}, filepath.Join(dir, "cache"), newNSExec(s.NodeNS(n)))
	return &podNet{cni: c, list: list}, nil
}

func (s Spec) runtimeConf(n, p int) *libcni.RuntimeConf {
	ns := s.PodNS(n, p)
	return &libcni.RuntimeConf{
		ContainerID: ns,
		NetNS:       "/run/netns/" + ns,
		IfName:      "eth0",
		Args:        [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "lab"}, {"K8S_POD_NAME", ns}},
	}
}

// addPod runs CNI ADD for pod p of node n (its namespace must exist).
func (s Spec) addPod(ctx context.Context, pn *podNet, n, p int) error {
	if _, err := pn.cni.AddNetworkList(ctx, pn.list, s.runtimeConf(n, p)); err != nil {
		return fmt.Errorf("cni add %s: %w", s.PodNS(n, p), err)
	}
	return nil
}

// delPod runs CNI DEL for pod p of node n.
func (s Spec) delPod(ctx context.Context, pn *podNet, n, p int) error {
	if err := pn.cni.DelNetworkList(ctx, pn.list, s.runtimeConf(n, p)); err != nil {
		return fmt.Errorf("cni del %s: %w", s.PodNS(n, p), err)
	}
	return nil
}

// AddPod creates pod p of node n while the lab runs (p beyond
// Spec.PodsPerNode, up to 9): its namespace, CNI ADD with the node's
// conflist, as a container runtime starting a new pod would. With
// Kubernetes it gets the cluster's resolv.conf; no Pod object is made.
func (l *Lab) AddPod(ctx context.Context, n, p int) error {
	s := l.Spec
	if n < 1 || n > s.Nodes || p <= s.PodsPerNode || p > 9 {
		return fmt.Errorf("add pod %d on node %d: want node 1..%d, pod %d..9", p, n, s.Nodes, s.PodsPerNode+1)
	}
	pn, err := s.loadPodNet(n)
	if err != nil {
		return err
	}
	if err := addNS(ctx, s.PodNS(n, p), podSysctls); err != nil {
		return err
	}
	if err := s.addPod(ctx, pn, n, p); err != nil {
		return err
	}
	if s.Kubernetes {
		return writeResolvConf(s.PodNS(n, p))
	}
	return nil
}

// DeletePod removes a pod AddPod made: CNI DEL, then its namespace.
func (l *Lab) DeletePod(ctx context.Context, n, p int) error {
	s := l.Spec
	pn, err := s.loadPodNet(n)
	if err != nil {
		return err
	}
	errs := []error{s.delPod(ctx, pn, n, p)}
	_, err = run(ctx, nil, "ip", "netns", "delete", s.PodNS(n, p))
	errs = append(errs, err, os.RemoveAll(filepath.Join(etcNetnsDir, s.PodNS(n, p))))
	return errors.Join(errs...)
}
