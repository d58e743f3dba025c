package k8s

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/podrouter/podrouter/agent"
	"github.com/podrouter/podrouter/health"
)

// Config configures the adapter. Field names match the kubernetes section
// of the daemon's config file.
type Config struct {
	// Kubeconfig is a kubeconfig file; "" uses the in-cluster service
	// account (the DaemonSet case).
	Kubeconfig string
	// NodeName is this node's Node name (the DaemonSet passes
	// spec.nodeName through the downward API). Required.
	NodeName string
	// Namespace is podrouter's own namespace, where PasswordSecret lives.
	Namespace string
	// PasswordSecret names the Secret holding the BGP MD5 password under
	// PasswordKey ("password" by default). "" : no password from Kubernetes.
	PasswordSecret string
	PasswordKey    string
	// DrainTaint also drains the node: "key" or "key=value". "" : only a
	// cordon or the exclude-from-external-load-balancers label drain.
	DrainTaint string
	// ASNBase turns the podrouter.io/rack label into the local ASN
	// (ASNBase + rack). 0: the rack label is rejected.
	ASNBase uint32
	// PeerASNBase turns the podrouter.io/rack label into the ASN of the
	// peers bgp.autoPeers discovers (PeerASNBase + rack).
	PeerASNBase uint32
	// DrainWithdrawAfter is the deprefer phase of a drain (bgp.drain), for
	// the Drained Event's message; 0: the pod CIDRs are withdrawn at once.
	DrainWithdrawAfter time.Duration
	// CNIConfPath is where the node's conflist is written, e.g.
	// /etc/cni/net.d/10-podrouter.conflist. "" : no CNI config is written.
	CNIConfPath string
	// CNIDataDir is host-local IPAM's state directory; "" : its default
	// (/var/lib/cni/networks). The lab sets one per node.
	CNIDataDir string
	// MTU for pod interfaces; 0: the smallest MTU of Uplinks.
	MTU     int
	Uplinks []string
	// StatusInterval is how often the condition and Events are refreshed
	// from the daemon's health (default 5s).
	StatusInterval time.Duration
	// Resync is the informers' resync period (default 10m).
	Resync time.Duration
	// DaemonSet is the DaemonSet running podrouter, in Namespace: set,
	// Uninstall watches it (see uninstall.go).
	DaemonSet string
}

// Defaults.
const (
	DefaultPasswordKey    = "password"
	DefaultStatusInterval = 5 * time.Second
	DefaultResync         = 10 * time.Minute
	// heartbeat: the condition is re-patched at least this often, so a
	// stale lastHeartbeatTime shows a daemon that stopped reporting.
	heartbeat = 2 * time.Minute
)

// Sink receives what the adapter reads from Kubernetes. Every call carries
// the whole current value; repeating one is a no-op for a correct sink.
// *agent.Agent implements SetNodeState.
type Sink interface {
	SetNodeState(agent.NodeState)
	// SetPeering is called with the Node's peering overrides, first at
	// start and then on every valid change.
	SetPeering(Peering)
	// SetPassword is called with the BGP MD5 password from the Secret,
	// first at start and then on every rotation.
	SetPassword(string)
}

// HealthSource is the daemon's state for the condition and Events.
type HealthSource interface {
	Snapshot(ctx context.Context) health.Snapshot
}

// Adapter is the Kubernetes edge of one podrouter daemon.
type Adapter struct {
	cfg    Config
	log    *slog.Logger
	client *coreClient
	rc     *rest.Config // for the clients of other API groups (ServiceCIDRs, Uninstall)
	health HealthSource // nil: no condition, no health Events
}

// New validates cfg and builds a client from cfg.Kubeconfig (or the
// in-cluster service account). It reads the kubeconfig file but talks to
// no server. client-go logs through klog, a process-wide logger: New sends
// it to logger instead of stderr. health may be nil.
func New(cfg Config, logger *slog.Logger, health HealthSource) (*Adapter, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	klog.SetSlogLogger(logger.With("component", "client-go"))
	var rc *rest.Config
	var err error
	if cfg.Kubeconfig == "" {
		rc, err = rest.InClusterConfig()
	} else {
		rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client config: %w", err)
	}
	return NewForConfig(cfg, rc, logger, health)
}

// NewForConfig is New with an explicit REST config (tests, other auth).
func NewForConfig(cfg Config, rc *rest.Config, logger *slog.Logger, health HealthSource) (*Adapter, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rc = rest.CopyConfig(rc)
	if rc.UserAgent == "" {
		rc.UserAgent = "podrouter/" + cfg.NodeName
	}
	client, err := newCoreClient(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	if cfg.PasswordKey == "" {
		cfg.PasswordKey = DefaultPasswordKey
	}
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = DefaultStatusInterval
	}
	if cfg.Resync <= 0 {
		cfg.Resync = DefaultResync
	}
	return &Adapter{cfg: cfg, log: logger, client: client, rc: rc, health: health}, nil
}

// Uninstall is the uninstall detection for this daemon's DaemonSet (nil
// when Config.DaemonSet is not set).
func (a *Adapter) Uninstall() (*Uninstall, error) {
	if a.cfg.DaemonSet == "" {
		return nil, nil
	}
	return NewUninstall(a.rc, a.cfg.Namespace, a.cfg.DaemonSet, a.cfg.Resync, a.log.With("component", "uninstall"))
}

func (c Config) validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("kubernetes.nodeName: required (set it from spec.nodeName)"))
	}
	if c.PasswordSecret != "" && c.Namespace == "" {
		errs = append(errs, errors.New("kubernetes.namespace: required with kubernetes.passwordSecret"))
	}
	if c.DaemonSet != "" && c.Namespace == "" {
		errs = append(errs, errors.New("kubernetes.namespace: required with kubernetes.daemonSet"))
	}
	if k, _, _ := strings.Cut(c.DrainTaint, "="); c.DrainTaint != "" && k == "" {
		errs = append(errs, fmt.Errorf("kubernetes.drainTaint: %q has no key", c.DrainTaint))
	}
	if c.MTU < 0 || (c.MTU > 0 && c.MTU < 576) {
		errs = append(errs, fmt.Errorf("kubernetes.mtu: %d is not a usable MTU", c.MTU))
	}
	return errors.Join(errs...)
}

func (c Config) options() Options {
	return Options{DrainTaint: c.DrainTaint, ASNBase: c.ASNBase, PeerASNBase: c.PeerASNBase}
}

// podMTU is the MTU for the CNI conflist.
func (c Config) podMTU() (int, error) {
	if c.MTU > 0 {
		return c.MTU, nil
	}
	mtu := 0
	for _, u := range c.Uplinks {
		m, err := uplinkMTU(u)
		if err != nil {
			return 0, err
		}
		if mtu == 0 || m < mtu {
			mtu = m
		}
	}
	return mtu, nil
}

// Snapshot is the state read once at start, before the BGP speaker is
// built (the local ASN, router ID and password are fixed at its start).
type Snapshot struct {
	State        agent.NodeState
	Peering      Peering
	PeeringError error // the overrides were malformed; Peering is the zero value
	Password     string
}

// Bootstrap reads this node's Node and the password Secret once.
func (a *Adapter) Bootstrap(ctx context.Context) (Snapshot, error) {
	var s Snapshot
	n, err := a.client.getNode(ctx, a.cfg.NodeName)
	if err != nil {
		return s, fmt.Errorf("get node %s: %w", a.cfg.NodeName, err)
	}
	t := Translate(n, a.cfg.options())
	if t.StateErr != nil {
		return s, fmt.Errorf("node %s: %w", a.cfg.NodeName, t.StateErr)
	}
	s.State, s.Peering = t.State, t.Peering
	if len(t.PeeringErrs) > 0 {
		s.Peering, s.PeeringError = Peering{Rack: -1}, joinErrs(t.PeeringErrs)
	}
	if a.cfg.PasswordSecret != "" {
		sec, err := a.client.getSecret(ctx, a.cfg.Namespace, a.cfg.PasswordSecret)
		if err != nil {
			return s, fmt.Errorf("get secret %s/%s: %w", a.cfg.Namespace, a.cfg.PasswordSecret, err)
		}
		if s.Password, err = password(sec.Data, a.cfg.PasswordKey); err != nil {
			return s, fmt.Errorf("secret %s/%s: %w", a.cfg.Namespace, a.cfg.PasswordSecret, err)
		}
	}
	return s, nil
}

// password reads and checks the MD5 password from a Secret's data.
func password(data map[string][]byte, key string) (string, error) {
	b, ok := data[key]
	if !ok {
		keys := slices.Sorted(mapKeys(data))
		return "", fmt.Errorf("no key %q (keys: %s)", key, strings.Join(keys, ", "))
	}
	pw := strings.TrimRight(string(b), "\r\n")
	switch {
	case pw == "":
		return "", fmt.Errorf("key %q is empty", key)
	case len(pw) > 80:
		return "", fmt.Errorf("key %q is longer than TCP_MD5SIG_MAXKEYLEN (80 bytes)", key)
	}
	return pw, nil
}
