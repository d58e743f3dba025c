package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// FieldManager is the field manager of every apply.
const FieldManager = "podrouter-apply"

// Applier server-side applies objects with the credentials it was made
// with.
type Applier struct {
	dyn    *dynamic.DynamicClient
	mapper meta.RESTMapper
}

// New returns an Applier that applies with the credentials of rc. It talks
// to no server until the first apply (discovery is lazy).
func New(rc *rest.Config) (*Applier, error) {
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return nil, err
	}
	return &Applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}, nil
}

// Resource returns the client for o's resource, in o's namespace if the
// resource is namespaced.
func (a *Applier) Resource(o *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := o.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, err
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return a.dyn.Resource(m.Resource).Namespace(o.GetNamespace()), nil
	}
	return a.dyn.Resource(m.Resource), nil
}

// Apply applies objs in order, dry-run or for real. It keeps going after a
// failure and returns what the server answered for the objects it
// accepted, and the failures joined.
func (a *Applier) Apply(ctx context.Context, objs []*unstructured.Unstructured, dryRun bool) ([]*unstructured.Unstructured, error) {
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: new(true), FieldValidation: "Strict"}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	var accepted []*unstructured.Unstructured
	var errs []error
	for _, o := range objs {
		got, err := a.applyOne(ctx, o, opts)
		if err != nil {
			errs = append(errs, fmt.Errorf("apply (dry-run %v) %s: %w", dryRun, ObjectID(o), err))
			continue
		}
		accepted = append(accepted, got)
	}
	return accepted, errors.Join(errs...)
}

func (a *Applier) applyOne(ctx context.Context, o *unstructured.Unstructured, opts metav1.PatchOptions) (*unstructured.Unstructured, error) {
	ri, err := a.Resource(o)
	if err != nil {
		return nil, err
	}
	data, err := o.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return ri.Patch(ctx, o.GetName(), types.ApplyPatchType, data, opts)
}

// ObjectID names an object for comparisons and messages.
func ObjectID(o *unstructured.Unstructured) string {
	return fmt.Sprintf("%s %s/%s", o.GroupVersionKind().GroupKind(), o.GetNamespace(), o.GetName())
}

// Decode splits a YAML (or JSON) stream of manifests into objects, in
// order; empty documents are skipped. name is for error messages.
func Decode(name string, b []byte) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		o := &unstructured.Unstructured{}
		if err := dec.Decode(&o.Object); errors.Is(err, io.EOF) {
			return objs, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if len(o.Object) > 0 {
			objs = append(objs, o)
		}
	}
}
