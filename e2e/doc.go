// Package e2e holds the end-to-end tests: the netns lab with real FRR
// ToRs, CNI pods, the gobgp CLI and Prometheus (lab_linux_test.go,
// datapath_linux_test.go, bfd_linux_test.go, observe_linux_test.go), the
// daemons in Kubernetes mode against a real kube-apiserver
// (k8s_linux_test.go), and the daemon started exactly as deploy/kubernetes
// ships it (shipped_linux_test.go). They run as root (CI does) and read
// the daemon's answers with the local API's wire types (package api).
//
// Owns: tests only.
//
// Imports (podrouter): none.
package e2e
