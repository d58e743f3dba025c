// Package kubernetes carries podrouter's Kubernetes manifests (this
// directory's YAML files, what `kubectl apply -k deploy/kubernetes`
// applies) into Go programs that install them: the Kubernetes lab applies
// the namespace, RBAC and admission policy from here.
//
// Owns: nothing but the embedded files.
//
// Imports (podrouter): none.
package kubernetes
