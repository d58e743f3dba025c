package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/podrouter/podrouter/k8s/k8stest"
)

// TestCheckShippedManifests runs `podrouter check` with exactly the
// DaemonSet's arguments ($(NODE_NAME) expanded as the kubelet does) on
// exactly the ConfigMap's config.yaml, both read from deploy/kubernetes:
// the shipped config leaves node.name to --node-name, which must be
// applied before validation (it once failed with "node.name: required").
func TestCheckShippedManifests(t *testing.T) {
	s, err := k8stest.LoadShipped(filepath.Join("..", "..", "deploy", "kubernetes"))
	if err != nil {
		t.Fatal(err)
	}
	args := shippedArgs(t, s, "node1")
	if len(args) == 0 || args[0] != "run" {
		t.Fatalf("DaemonSet args %q: want `run ...`", args)
	}
	if err := execute(t.Context(), append([]string{"check"}, args[1:]...), io.Discard, io.Discard); err != nil {
		t.Fatalf("podrouter check %s: %v", strings.Join(args[1:], " "), err)
	}
	// The same without the node name is refused, naming the field.
	var noName []string
	for _, a := range args[1:] {
		if !strings.HasPrefix(a, "--node-name") {
			noName = append(noName, a)
		}
	}
	if err := execute(t.Context(), append([]string{"check"}, noName...), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "node.name: required") {
		t.Errorf("check without --node-name: %v, want node.name: required", err)
	}
}

// shippedArgs writes the ConfigMap's files under a temporary root (the
// volume mounts) and returns the DaemonSet's args for node with their
// paths moved there.
func shippedArgs(t *testing.T, s k8stest.Shipped, node string) []string {
	t.Helper()
	root := t.TempDir()
	args := s.Args(map[string]string{"spec.nodeName": node})
	for p, b := range s.Files {
		dst := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
		for i := range args {
			args[i] = strings.ReplaceAll(args[i], p, dst)
		}
	}
	return args
}
