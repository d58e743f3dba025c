package k8s_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/pkg/util"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/podrouter/podrouter/config"
)

const manifestDir = "../deploy/kubernetes"

// manifests builds deploy/kubernetes with the kustomize library, as
// `kubectl apply -k deploy/kubernetes` does, and returns its objects in
// kustomize's output order.
func manifests(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	return build(t, filesys.MakeFsOnDisk(), manifestDir)
}

// build runs kustomize on dir in fSys with kubectl kustomize's defaults:
// no plugins, loads restricted to dir, and the sort order of the
// kustomization's sortOptions, else the legacy one (Namespaces first).
func build(t *testing.T, fSys filesys.FileSystem, dir string) []*unstructured.Unstructured {
	t.Helper()
	opts := krusty.MakeDefaultOptions()
	opts.Reorder = krusty.ReorderOptionUnspecified
	rm, err := krusty.MakeKustomizer(opts).Run(fSys, dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var out []*unstructured.Unstructured
	for _, r := range rm.Resources() {
		// Through JSON, so numbers are int64 as unstructured expects.
		b, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("kustomize build %s: %s: %v", dir, r.CurId(), err)
		}
		o := &unstructured.Unstructured{}
		if err := o.UnmarshalJSON(b); err != nil {
			t.Fatalf("kustomize build %s: %s: %v", dir, r.CurId(), err)
		}
		out = append(out, o)
	}
	if len(out) == 0 {
		t.Fatalf("kustomize build %s: no objects", dir)
	}
	return out
}

// kustomization reads the kustomization file of deploy/kubernetes.
func kustomization(t *testing.T) *types.Kustomization {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(manifestDir, konfig.DefaultKustomizationFileName()))
	if err != nil {
		t.Fatal(err)
	}
	k := &types.Kustomization{}
	if err := k.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	k.FixKustomization()
	return k
}

// TestDeployManifestsKustomization checks that the kustomization is the
// whole deployment: it lists every manifest in deploy/kubernetes, and its
// images transformer sets the tag of the DaemonSet's containers.
// TestDeployManifestsAndRBAC applies what it builds.
func TestDeployManifestsKustomization(t *testing.T) {
	k := kustomization(t)

	var files []string
	entries, err := os.ReadDir(manifestDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		n := e.Name()
		if e.Type().IsRegular() && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) &&
			!slices.Contains(konfig.RecognizedKustomizationFileNames(), n) {
			files = append(files, n)
		}
	}
	if len(files) == 0 {
		t.Fatalf("no manifests in %s", manifestDir)
	}
	for _, f := range files {
		if !slices.Contains(k.Resources, f) {
			t.Errorf("%s/%s is not in the kustomization's resources %v: `kubectl apply -k` would not apply it", manifestDir, f, k.Resources)
		}
	}
	for _, r := range k.Resources {
		if !slices.Contains(files, r) {
			t.Errorf("kustomization resource %q is not a manifest file in %s", r, manifestDir)
		}
	}

	if len(k.Images) == 0 {
		t.Fatal("kustomization has no images: the DaemonSet's tag is set in one place, the kustomization")
	}
	t.Run("built", func(t *testing.T) {
		checkImages(t, manifests(t), k.Images)
	})
	// The same build with another tag: the tag the DaemonSet gets comes
	// from the transformer, not from daemonset.yaml.
	t.Run("retagged", func(t *testing.T) {
		mem := filesys.MakeFsInMemory()
		for _, f := range slices.Concat(files, []string{konfig.DefaultKustomizationFileName()}) {
			b, err := os.ReadFile(filepath.Join(manifestDir, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := mem.WriteFile(filepath.Join("/deploy", f), b); err != nil {
				t.Fatal(err)
			}
		}
		retag := *k
		retag.Images = slices.Clone(k.Images)
		for i := range retag.Images {
			retag.Images[i].NewTag, retag.Images[i].Digest = "kustomize-test", ""
		}
		b, err := yaml.Marshal(&retag)
		if err != nil {
			t.Fatal(err)
		}
		if err := mem.WriteFile(filepath.Join("/deploy", konfig.DefaultKustomizationFileName()), b); err != nil {
			t.Fatal(err)
		}
		checkImages(t, build(t, mem, "/deploy"), retag.Images)
	})
}

// checkImages asserts that every container of every DaemonSet in objs runs
// the image an entry of images gives it.
func checkImages(t *testing.T, objs []*unstructured.Unstructured, images []types.Image) {
	t.Helper()
	want := map[string]string{} // image name after the transformer -> image
	for _, img := range images {
		name := img.Name
		if img.NewName != "" {
			name = img.NewName
		}
		ref := name
		if img.NewTag != "" {
			ref += ":" + img.NewTag
		}
		if img.Digest != "" {
			ref += "@" + img.Digest
		}
		if ref == name {
			t.Errorf("kustomization image %q sets neither newTag nor digest", img.Name)
		}
		want[name] = ref
	}
	var n int
	for _, o := range objs {
		if o.GetKind() != "DaemonSet" {
			continue
		}
		for _, field := range []string{"initContainers", "containers"} {
			ctrs, _, err := unstructured.NestedSlice(o.Object, "spec", "template", "spec", field)
			if err != nil {
				t.Fatalf("DaemonSet %s %s: %v", o.GetName(), field, err)
			}
			for _, c := range ctrs {
				m, _ := c.(map[string]any) // a missing name or image shows as "" below
				ctr, _ := m["name"].(string)
				image, _ := m["image"].(string)
				name, _, _ := util.SplitImageName(image)
				ref, ok := want[name]
				switch {
				case !ok:
					t.Errorf("DaemonSet %s container %q image %q: not set by the kustomization's images %+v", o.GetName(), ctr, image, images)
				case image != ref:
					t.Errorf("DaemonSet %s container %q image %q, want %q from the kustomization's images", o.GetName(), ctr, image, ref)
				}
				n++
			}
		}
	}
	if n == 0 {
		t.Error("the kustomize build has no DaemonSet container")
	}
}

// TestLabOverlay: deploy/lab (what the Kubernetes lab with real nodes
// installs with `kubectl apply -k`) builds with kubectl kustomize's
// defaults, is deploy/kubernetes plus its patches only, carries a config
// the daemon accepts with the DaemonSet's --node-name, and points the
// daemon at the API server's own address.
func TestLabOverlay(t *testing.T) {
	base := manifests(t)
	lab := build(t, filesys.MakeFsOnDisk(), "../deploy/lab")
	var ids, baseIDs []string
	for _, o := range lab {
		ids = append(ids, o.GetKind()+"/"+o.GetName())
	}
	for _, o := range base {
		baseIDs = append(baseIDs, o.GetKind()+"/"+o.GetName())
	}
	if !slices.Equal(ids, baseIDs) {
		t.Errorf("deploy/lab objects %v, deploy/kubernetes %v", ids, baseIDs)
	}
	for _, o := range lab {
		switch o.GetKind() {
		case "ConfigMap":
			conf, _, _ := unstructured.NestedString(o.Object, "data", "config.yaml")
			path := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := config.Load(path, config.Overrides{NodeName: "node1"})
			if err != nil {
				t.Fatalf("deploy/lab config: %v\n%s", err, conf)
			}
			if !c.Kubernetes.Enabled || c.Kubernetes.DaemonSet != "podrouter" || !c.BGP.AutoPeers.Enabled ||
				c.BGP.AutoPeers.ASN != 65100 || c.Kubernetes.ASNBase != 65000 || !slices.Equal(c.Datapath.Uplinks, []string{"up1"}) {
				t.Errorf("deploy/lab config: %+v", c)
			}
		case "DaemonSet":
			cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			env := map[string]string{}
			c0, _ := cs[0].(map[string]any)
			es, _ := c0["env"].([]any)
			for _, e := range es {
				m, _ := e.(map[string]any)
				v, _ := m["value"].(string)
				env[m["name"].(string)] = v
			}
			if env["KUBERNETES_SERVICE_HOST"] != "192.168.254.1" || env["KUBERNETES_SERVICE_PORT"] != "6443" {
				t.Errorf("deploy/lab DaemonSet env %v: want the API server's own address", env)
			}
			if img, _ := c0["image"].(string); img != "podrouter:latest" {
				t.Errorf("deploy/lab image %q", img)
			}
		}
	}
}
