// Package kubernetes carries podrouter's Kubernetes manifests (this
// directory's YAML files, what `kubectl apply -k deploy/kubernetes`
// applies) into Go programs that install them: the Kubernetes lab applies
// the namespace, RBAC and admission policy from here.
package kubernetes

import "embed"

// Manifests holds every *.yaml file of deploy/kubernetes.
//
//go:embed *.yaml
var Manifests embed.FS

// Access lists the manifests that give podrouter its API access (namespace,
// ServiceAccount, RBAC, own-node admission policy), in apply order.
var Access = []string{"namespace.yaml", "rbac.yaml", "own-node-policy.yaml"}
