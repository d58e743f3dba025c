package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/podrouter/podrouter/agent"
	"github.com/podrouter/podrouter/health"
)

func mapKeys[V any](m map[string]V) iter.Seq[string] { return maps.Keys(m) }

// run is the state of one Run: what was last handed to the sink and
// reported, so that only changes go out.
type run struct {
	a        *Adapter
	sink     Sink
	recorder record.EventRecorder
	nodes    listerscorev1.NodeLister
	secrets  listerscorev1.SecretLister // nil without a password secret

	node        *corev1.Node // last seen, for Events
	haveState   bool
	state       agent.NodeState
	havePeering bool
	peering     Peering
	badPeering  string // last invalid-override message reported
	badNode     string
	cni         []byte
	cniErr      string
	havePW      bool
	pw          string
	badPW       string
	prevHealth  *health.Snapshot
	cond        [3]string // status, reason, message last patched
	condAt      time.Time
}

// Run watches this node's Node (and the password Secret) until ctx ends,
// handing every change to sink, writing the CNI conflist and reporting the
// condition and Events. A failing API server is retried forever; the last
// good state stays in force meanwhile.
func (a *Adapter) Run(ctx context.Context, sink Sink) error {
	bc := record.NewBroadcaster(record.WithContext(ctx))
	bc.StartRecordingToSink(eventSink{a.client})
	defer bc.Shutdown()
	r := &run{
		a: a, sink: sink,
		recorder: bc.NewRecorder(a.client.scheme, corev1.EventSource{Component: "podrouter", Host: a.cfg.NodeName}),
	}

	// One informer per object: this Node, and the password Secret.
	ictx, stopInformers := context.WithCancel(ctx)
	var informers sync.WaitGroup
	defer func() { stopInformers(); informers.Wait() }()
	start := func(inf cache.SharedIndexInformer, kick chan struct{}) error {
		if _, err := inf.AddEventHandler(kicker(kick)); err != nil {
			return err
		}
		informers.Go(func() { inf.RunWithContext(ictx) })
		return nil
	}
	nodeKick, secretKick := make(chan struct{}, 1), make(chan struct{}, 1)
	ni := a.client.informer("nodes", "", a.cfg.NodeName, &corev1.Node{}, a.cfg.Resync)
	if err := start(ni, nodeKick); err != nil {
		return err
	}
	r.nodes = listerscorev1.NewNodeLister(ni.GetIndexer())
	synced := []cache.InformerSynced{ni.HasSynced}
	if a.cfg.PasswordSecret != "" {
		si := a.client.informer("secrets", a.cfg.Namespace, a.cfg.PasswordSecret, &corev1.Secret{}, a.cfg.Resync)
		if err := start(si, secretKick); err != nil {
			return err
		}
		r.secrets = listerscorev1.NewSecretLister(si.GetIndexer())
		synced = append(synced, si.HasSynced)
	}
	a.log.Info("watching node", "node", a.cfg.NodeName, "password_secret", a.cfg.PasswordSecret)
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil // ctx ended
	}
	a.log.Info("node informer synced")
	r.syncNode()
	if r.secrets != nil {
		r.syncSecret()
	}
	r.syncHealth(ctx)

	tick := time.NewTicker(a.cfg.StatusInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-nodeKick:
			r.syncNode()
		case <-secretKick:
			r.syncSecret()
		case <-tick.C:
			r.syncHealth(ctx)
		}
	}
}

// kicker turns informer notifications into kicks (level-triggered: the
// loop reads the lister, not the notification).
func kicker(ch chan struct{}) cache.ResourceEventHandlerFuncs {
	kick := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { kick() },
		UpdateFunc: func(any, any) { kick() },
		DeleteFunc: func(any) { kick() },
	}
}

func (r *run) event(typ, reason, format string, args ...any) {
	if r.node == nil {
		return
	}
	r.recorder.Eventf(r.node, typ, reason, format, args...)
}

func (r *run) syncNode() {
	log := r.a.log
	n, err := r.nodes.Get(r.a.cfg.NodeName)
	if apierrors.IsNotFound(err) {
		log.Warn("node object not found; keeping the last state", "node", r.a.cfg.NodeName)
		return
	}
	if err != nil {
		log.Error("read node from cache", "err", err)
		return
	}
	r.node = n
	t := Translate(n, r.a.cfg.options())

	if t.StateErr != nil {
		if msg := t.StateErr.Error(); msg != r.badNode {
			r.badNode = msg
			log.Error("node spec unusable; keeping the last state", "err", t.StateErr)
			r.event(corev1.EventTypeWarning, EventInvalidNode, "podrouter keeps its last state: %s", msg)
		}
	} else {
		r.badNode = ""
		if !r.haveState || !sameState(r.state, t.State) {
			if r.haveState && r.state.Drained != t.State.Drained {
				if t.State.Drained {
					if d := r.a.cfg.DrainWithdrawAfter; d > 0 {
						r.event(corev1.EventTypeNormal, EventDrained, "pod CIDRs %v depreferred over BGP, withdrawn in %s (%s)", t.State.PodCIDRs, d, drainWhy(n, r.a.cfg.DrainTaint))
					} else {
						r.event(corev1.EventTypeNormal, EventDrained, "pod CIDRs %v withdrawn from BGP (%s)", t.State.PodCIDRs, drainWhy(n, r.a.cfg.DrainTaint))
					}
				} else {
					r.event(corev1.EventTypeNormal, EventUndrained, "pod CIDRs %v advertised over BGP again", t.State.PodCIDRs)
				}
			}
			log.Info("node state", "pod_cidrs", t.State.PodCIDRs, "drained", t.State.Drained)
			r.state, r.haveState = t.State, true
			r.sink.SetNodeState(t.State)
		}
		r.writeCNI(t.State)
	}

	if len(t.PeeringErrs) > 0 {
		msg := joinErrs(t.PeeringErrs).Error()
		if msg != r.badPeering {
			r.badPeering = msg
			log.Error("invalid peering override; keeping the last good peering", "err", msg)
			r.event(corev1.EventTypeWarning, EventInvalidOverride, "podrouter keeps its last good peering: %s", msg)
		}
		return
	}
	r.badPeering = ""
	if !r.havePeering || !r.peering.Equal(t.Peering) {
		log.Info("peering overrides", "asn", t.Peering.ASN, "rack", t.Peering.Rack, "router_id", t.Peering.RouterID, "extra_peers", len(t.Peering.ExtraPeers))
		r.peering, r.havePeering = t.Peering, true
		r.sink.SetPeering(t.Peering)
	}
}

func sameState(a, b agent.NodeState) bool {
	return a.Name == b.Name && a.Drained == b.Drained && slices.Equal(a.PodCIDRs, b.PodCIDRs)
}

func drainWhy(n *corev1.Node, taint string) string {
	switch {
	case n.Spec.Unschedulable:
		return "node cordoned"
	case hasKey(n.Labels, LabelExcludeFromLB):
		return "label " + LabelExcludeFromLB
	}
	return "taint " + taint
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

func (r *run) writeCNI(st agent.NodeState) {
	path := r.a.cfg.CNIConfPath
	if path == "" || len(st.PodCIDRs) == 0 {
		return
	}
	fail := func(err error) {
		if msg := err.Error(); msg != r.cniErr {
			r.cniErr = msg
			r.a.log.Error("write cni conflist", "path", path, "err", err)
			r.event(corev1.EventTypeWarning, EventCNIConfig, "cannot write CNI config %s: %s", path, msg)
		}
	}
	mtu, err := r.a.cfg.podMTU()
	if err != nil {
		fail(err)
		return
	}
	b, err := CNIConfig{PodCIDRs: st.PodCIDRs, MTU: mtu, DataDir: r.a.cfg.CNIDataDir}.Render()
	if err != nil {
		fail(err)
		return
	}
	if slices.Equal(b, r.cni) {
		return
	}
	wrote, err := WriteFileIfChanged(path, b, 0o644)
	if err != nil {
		fail(err)
		return
	}
	r.cni, r.cniErr = b, ""
	if wrote {
		r.a.log.Info("cni conflist written", "path", path, "pod_cidrs", st.PodCIDRs, "mtu", mtu)
		r.event(corev1.EventTypeNormal, EventCNIConfig, "CNI config %s written for pod CIDRs %v (MTU %d)", path, st.PodCIDRs, mtu)
	}
}

func (r *run) syncSecret() {
	c := r.a.cfg
	log := r.a.log.With("secret", c.Namespace+"/"+c.PasswordSecret)
	s, err := r.secrets.Secrets(c.Namespace).Get(c.PasswordSecret)
	if apierrors.IsNotFound(err) {
		log.Warn("password secret not found; keeping the last password")
		return
	}
	if err != nil {
		log.Error("read secret from cache", "err", err)
		return
	}
	pw, err := password(s.Data, c.PasswordKey)
	if err != nil {
		if msg := err.Error(); msg != r.badPW {
			r.badPW = msg
			log.Error("password secret unusable; keeping the last password", "err", err)
			r.event(corev1.EventTypeWarning, EventPasswordInvalid, "secret %s/%s: %s; podrouter keeps the last password", c.Namespace, c.PasswordSecret, msg)
		}
		return
	}
	r.badPW = ""
	if r.havePW && pw == r.pw {
		return
	}
	if r.havePW {
		log.Info("bgp password rotated")
		r.event(corev1.EventTypeNormal, EventPasswordRotated, "BGP MD5 password rotated from secret %s/%s (resourceVersion %s)", c.Namespace, c.PasswordSecret, s.ResourceVersion)
	}
	r.pw, r.havePW = pw, true
	r.sink.SetPassword(pw)
}

// syncHealth records Events for what changed since the last look and
// patches the PodrouterReady condition when it changed (or its heartbeat
// is due).
func (r *run) syncHealth(ctx context.Context) {
	if r.a.health == nil || r.node == nil {
		return
	}
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	h := r.a.health.Snapshot(hctx)
	cancel()
	for _, e := range health.Events(r.prevHealth, h) {
		r.recorder.Event(r.node, eventType(e), e.Reason, e.Message)
	}
	r.prevHealth = &h

	c := h.Condition()
	status, reason, msg := conditionStatus(c), c.Reason, c.Message
	now := time.Now()
	if r.cond == [3]string{string(status), reason, msg} && now.Sub(r.condAt) < heartbeat {
		return
	}
	transition := metav1.NewTime(now)
	if n, err := r.nodes.Get(r.a.cfg.NodeName); err == nil {
		for _, c := range n.Status.Conditions {
			if c.Type == ConditionType && c.Status == status {
				transition = c.LastTransitionTime
			}
		}
	}
	patch := map[string]any{"status": map[string]any{"conditions": []corev1.NodeCondition{{
		Type: ConditionType, Status: status, Reason: reason, Message: msg,
		LastHeartbeatTime: metav1.NewTime(now), LastTransitionTime: transition,
	}}}}
	b, err := json.Marshal(patch)
	if err != nil {
		r.a.log.Error("encode condition patch", "err", err)
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.a.client.patchNodeStatus(pctx, r.a.cfg.NodeName, b); err != nil {
		r.a.log.Error("patch node condition", "condition", ConditionType, "err", fmt.Errorf("patch nodes/%s/status: %w", r.a.cfg.NodeName, err))
		return
	}
	r.cond, r.condAt = [3]string{string(status), reason, msg}, now
}
