package k8s

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// Uninstall tells the daemon, when it is asked to exit, whether podrouter
// is being removed from the cluster rather than restarted: its namespace
// or its DaemonSet is being deleted or is gone. A rolling update (`kubectl
// rollout restart`) replaces the pods and leaves both, so the daemon exits
// for a graceful restart and keeps the node's routes, programs and pins
// for its successor; `kubectl delete -k` (which deletes the namespace
// first) or deleting the DaemonSet has no successor, so the daemon takes
// everything it put on the node away before it exits.
//
// It watches the two objects' metadata only (client-go's metadata client:
// no typed API group is linked in), from the start, because by the time a
// pod of a deleted DaemonSet gets its SIGTERM, the RBAC that allows
// reading them may be gone too; Check confirms with a fresh read when it
// can and falls back on what the watches saw.
type Uninstall struct {
	log     *slog.Logger
	client  metadata.Interface
	objects map[string]*watched // "namespace", "daemonset"; fixed after NewUninstall
}

// watched is one object's last known state.
type watched struct {
	gvr       schema.GroupVersionResource
	namespace string // of the object; "" for a namespace
	name      string
	informer  cache.SharedIndexInformer
}

var (
	namespacesGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	daemonSetsGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}
)

// NewUninstall builds the watcher for the DaemonSet daemonSet in
// namespace (talks to no server yet).
func NewUninstall(rc *rest.Config, namespace, daemonSet string, resync time.Duration, log *slog.Logger) (*Uninstall, error) {
	if namespace == "" || daemonSet == "" {
		return nil, fmt.Errorf("uninstall detection needs kubernetes.namespace and kubernetes.daemonSet")
	}
	c, err := metadata.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes metadata client: %w", err)
	}
	u := &Uninstall{log: log, client: c, objects: map[string]*watched{}}
	u.objects["namespace"] = &watched{gvr: namespacesGVR, name: namespace}
	u.objects["daemonset"] = &watched{gvr: daemonSetsGVR, namespace: namespace, name: daemonSet}
	for _, w := range u.objects {
		w.informer = cache.NewSharedIndexInformer(u.listWatch(w), &metav1.PartialObjectMetadata{}, resync, cache.Indexers{})
	}
	return u, nil
}

// resource is the metadata client of w's resource, in w's namespace.
func (u *Uninstall) resource(w *watched) metadata.ResourceInterface {
	ri := u.client.Resource(w.gvr)
	if w.namespace != "" {
		return ri.Namespace(w.namespace)
	}
	return ri
}

// listWatch lists and watches the one object w names (field selector
// metadata.name, which RBAC's resourceNames require for list and watch).
func (u *Uninstall) listWatch(w *watched) *cache.ListWatch {
	sel := fields.OneTermEqualSelector("metadata.name", w.name).String()
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return u.resource(w).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return u.resource(w).Watch(ctx, o)
		},
	}
}

// Run runs the watches until ctx ends. A watch the service account may
// not make (manifests older than this detection) only logs: the daemon
// then always exits for a graceful restart, as before.
func (u *Uninstall) Run(ctx context.Context) error {
	for kind, w := range u.objects {
		if err := w.informer.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
			u.log.Debug("uninstall watch", "object", kind, "err", err)
		}); err != nil {
			return err
		}
		go w.informer.RunWithContext(ctx)
	}
	<-ctx.Done()
	return nil
}

// Check reports whether podrouter is being uninstalled, and why. It reads
// both objects afresh (bounded by ctx); where a read fails it uses what
// the watch last saw, and where the watch never synced either, it answers
// no: a restart that keeps the node's state is the safe mistake.
func (u *Uninstall) Check(ctx context.Context) (bool, string) {
	for _, kind := range []string{"namespace", "daemonset"} {
		w := u.objects[kind]
		what := kind + " " + w.name
		if w.namespace != "" {
			what = kind + " " + w.namespace + "/" + w.name
		}
		m, err := u.resource(w).Get(ctx, w.name, metav1.GetOptions{})
		switch {
		case err == nil:
			if m.DeletionTimestamp != nil {
				return true, what + " is being deleted"
			}
		case apierrors.IsNotFound(err):
			return true, what + " is gone"
		default:
			if gone, why := w.cached(what); gone {
				return true, why + " (as last watched; reading it now: " + err.Error() + ")"
			}
		}
	}
	return false, ""
}

// cached is the watch's view of w: deleted (after the watch had synced)
// or being deleted.
func (w *watched) cached(what string) (bool, string) {
	if !w.informer.HasSynced() {
		return false, ""
	}
	objs := w.informer.GetStore().List()
	if len(objs) == 0 {
		return true, what + " is gone"
	}
	if m, ok := objs[0].(*metav1.PartialObjectMetadata); ok && m.DeletionTimestamp != nil {
		return true, what + " is being deleted"
	}
	return false, ""
}
