package k8stest

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

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

// Applier server-side applies objects (like `kubectl apply
// --server-side`), with strict field validation.
type Applier struct {
	dyn    *dynamic.DynamicClient
	mapper meta.RESTMapper
}

// NewApplier applies with the credentials of rc.
func NewApplier(rc *rest.Config) (*Applier, error) {
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
func (a *Applier) Apply(objs []*unstructured.Unstructured, dryRun bool) ([]*unstructured.Unstructured, error) {
	opts := metav1.PatchOptions{FieldManager: "podrouter-test", Force: new(true), FieldValidation: "Strict"}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	var accepted []*unstructured.Unstructured
	var errs []error
	for _, o := range objs {
		got, err := a.applyOne(o, opts)
		if err != nil {
			errs = append(errs, fmt.Errorf("apply (dry-run %v) %s: %w", dryRun, ObjectID(o), err))
			continue
		}
		accepted = append(accepted, got)
	}
	return accepted, errors.Join(errs...)
}

func (a *Applier) applyOne(o *unstructured.Unstructured, opts metav1.PatchOptions) (*unstructured.Unstructured, error) {
	ri, err := a.Resource(o)
	if err != nil {
		return nil, err
	}
	data, err := o.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return ri.Patch(context.Background(), o.GetName(), types.ApplyPatchType, data, opts)
}

// ObjectID names an object for comparisons and messages.
func ObjectID(o *unstructured.Unstructured) string {
	return fmt.Sprintf("%s %s/%s", o.GroupVersionKind().GroupKind(), o.GetNamespace(), o.GetName())
}

// Apply server-side applies every object of the given YAML manifest files
// as admin, in file order.
func (s *Server) Apply(t testing.TB, files ...string) {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for {
			o := &unstructured.Unstructured{}
			if err := dec.Decode(&o.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if len(o.Object) > 0 {
				objs = append(objs, o)
			}
		}
	}
	a, err := NewApplier(s.Admin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(objs, false); err != nil {
		t.Fatal(err)
	}
}

// WriteKubeconfig writes a kubeconfig for rc (bearer token, CA, host of
// this server) to path.
func (s *Server) WriteKubeconfig(t testing.TB, path string, rc *rest.Config) {
	t.Helper()
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q, certificate-authority-data: %s}}]
users: [{name: user, user: {token: %q}}]
contexts: [{name: test, context: {cluster: test, user: user}}]
current-context: test
`, s.host, base64.StdEncoding.EncodeToString(s.ca), rc.BearerToken)
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
}
