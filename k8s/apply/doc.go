// Package apply server-side applies Kubernetes objects from YAML manifests
// (like `kubectl apply --server-side`), with strict field validation. The
// test harness (k8s/k8stest) and the lab use it to install
// deploy/kubernetes; it is never linked into the shipped podrouter.
//
// Owns: the dynamic client and REST mapper of harnesses.
//
// Imports (podrouter): none.
package apply
