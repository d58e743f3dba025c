// Package k8stest runs a real kube-apiserver backed by a real etcd on
// loopback for tests: free ports, certificates generated in-process, RBAC
// authorization, a static admin token, and ServiceAccount tokens minted
// through the TokenRequest API. Every process and directory it makes is
// removed by the test's cleanup.
//
// The kube-apiserver binary comes from `make kube` (bin/ in the
// repository, or $KUBE_APISERVER); etcd from Debian's etcd-server ($ETCD or
// PATH). When one is missing the test is skipped with the reason, except
// under CI (CI=true), where it fails: CI builds them first.
//
// LoadShipped reads deploy/kubernetes (DaemonSet and ConfigMap) so tests
// start the daemon exactly as it ships.
//
// Owns: test harnesses only (never linked into podrouter).
//
// Imports (podrouter): k8s/apply.
package k8stest
