package k8stest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// Shipped is what deploy/kubernetes runs on a node, read from the
// manifests themselves (not copied), so that a test starting the daemon
// from it follows every change to them.
type Shipped struct {
	// Container is the DaemonSet's podrouter container.
	Container corev1.Container
	// Files are the ConfigMap keys the container sees, by their path in
	// the container (volumeMount path + key).
	Files map[string][]byte
}

// LoadShipped reads daemonset.yaml and configmap.yaml from dir
// (deploy/kubernetes).
func LoadShipped(dir string) (Shipped, error) {
	var s Shipped
	var ds appsv1.DaemonSet
	if err := readManifest(filepath.Join(dir, "daemonset.yaml"), &ds); err != nil {
		return s, err
	}
	var cm corev1.ConfigMap
	if err := readManifest(filepath.Join(dir, "configmap.yaml"), &cm); err != nil {
		return s, err
	}
	pod := ds.Spec.Template.Spec
	for _, c := range pod.Containers {
		if c.Name == "podrouter" {
			s.Container = c
		}
	}
	if s.Container.Name == "" {
		return s, fmt.Errorf("daemonset.yaml: no container named podrouter")
	}
	s.Files = map[string][]byte{}
	for _, vm := range s.Container.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name != vm.Name || v.ConfigMap == nil {
				continue
			}
			if v.ConfigMap.Name != cm.Name {
				return s, fmt.Errorf("volume %s: ConfigMap %q, configmap.yaml holds %q", v.Name, v.ConfigMap.Name, cm.Name)
			}
			for k, data := range cm.Data {
				s.Files[filepath.Join(vm.MountPath, k)] = []byte(data)
			}
		}
	}
	return s, nil
}

func readManifest(path string, into any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.UnmarshalStrict(b, into); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// Args returns the container's args with $(VAR) references expanded as
// the kubelet does, from the container's env: a fieldRef is answered by
// fields (fieldPath -> value, e.g. "spec.nodeName" -> "node1"), a literal
// value is used as is. A reference to an unknown variable stays as written
// (the kubelet's rule).
func (s Shipped) Args(fields map[string]string) []string {
	env := s.Env(fields)
	out := make([]string, len(s.Container.Args))
	for i, a := range s.Container.Args {
		out[i] = varRef.ReplaceAllStringFunc(a, func(m string) string {
			if v, ok := env[strings.TrimSuffix(strings.TrimPrefix(m, "$("), ")")]; ok {
				return v
			}
			return m
		})
	}
	return out
}

// Env returns the container's environment, fieldRefs answered by fields.
func (s Shipped) Env(fields map[string]string) map[string]string {
	env := map[string]string{}
	for _, e := range s.Container.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			if v, ok := fields[e.ValueFrom.FieldRef.FieldPath]; ok {
				env[e.Name] = v
			}
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		}
	}
	return env
}
