package kubernetes

import "embed"

// Manifests holds every *.yaml file of deploy/kubernetes.
//
//go:embed *.yaml
var Manifests embed.FS

// Access lists the manifests that give podrouter its API access (namespace,
// ServiceAccount, RBAC, own-node admission policy), in apply order.
var Access = []string{"namespace.yaml", "rbac.yaml", "own-node-policy.yaml"}
