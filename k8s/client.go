package k8s

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// coreClient is the part of the core/v1 API the adapter uses: its Node,
// one Secret, Events. It is a REST client over a scheme that knows core/v1
// only. client-go's clientset (and every typed client, which registers
// all API groups in client-go's scheme) would link the types of every API
// group into podrouter: about 13 MB of its binary for nothing.
type coreClient struct {
	rc     *rest.RESTClient
	scheme *runtime.Scheme
}

// eventTimeout bounds one Event write (the recorder retries).
const eventTimeout = 10 * time.Second

func newCoreClient(cfg *rest.Config) (*coreClient, error) {
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		return nil, err
	}
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.APIPath = "/api"
	c.NegotiatedSerializer = serializer.NewCodecFactory(s).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, err
	}
	return &coreClient{rc: rc, scheme: s}, nil
}

func (c *coreClient) getNode(ctx context.Context, name string) (*corev1.Node, error) {
	n := &corev1.Node{}
	return n, c.rc.Get().Resource("nodes").Name(name).Do(ctx).Into(n)
}

func (c *coreClient) getSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	return s, c.rc.Get().Namespace(namespace).Resource("secrets").Name(name).Do(ctx).Into(s)
}

// patchNodeStatus applies a strategic-merge patch to nodes/NAME/status.
func (c *coreClient) patchNodeStatus(ctx context.Context, name string, patch []byte) error {
	return c.rc.Patch(types.StrategicMergePatchType).Resource("nodes").Name(name).SubResource("status").
		Param("fieldManager", "podrouter").Body(patch).Do(ctx).Error()
}

// informer watches the one object of resource named name (in namespace;
// "" for cluster-scoped), as the field selector metadata.name=name.
func (c *coreClient) informer(resource, namespace, name string, obj runtime.Object, resync time.Duration) cache.SharedIndexInformer {
	lw := cache.NewFilteredListWatchFromClient(c.rc, resource, namespace, func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
	})
	return cache.NewSharedIndexInformer(lw, obj, resync, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}

// eventSink writes the recorder's Events (record.EventSink).
type eventSink struct{ c *coreClient }

func (s eventSink) Create(e *corev1.Event) (*corev1.Event, error) {
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	out := &corev1.Event{}
	err := s.c.rc.Post().Namespace(e.Namespace).Resource("events").Body(e).Do(ctx).Into(out)
	return out, err
}

func (s eventSink) Update(e *corev1.Event) (*corev1.Event, error) {
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	out := &corev1.Event{}
	err := s.c.rc.Put().Namespace(e.Namespace).Resource("events").Name(e.Name).Body(e).Do(ctx).Into(out)
	return out, err
}

func (s eventSink) Patch(e *corev1.Event, data []byte) (*corev1.Event, error) {
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	out := &corev1.Event{}
	err := s.c.rc.Patch(types.StrategicMergePatchType).Namespace(e.Namespace).Resource("events").Name(e.Name).
		Body(data).Do(ctx).Into(out)
	return out, err // unwrapped: the recorder tells a missing Event by its status
}
