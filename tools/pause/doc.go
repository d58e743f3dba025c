// Command pause is the sandbox ("infra") container of a pod: the process
// that holds the pod's namespaces while its containers come and go, as
// Kubernetes' pause.c. It sleeps until SIGINT or SIGTERM (exit 0) and,
// as PID 1 of a pod sharing its PID namespace, reaps every orphan that is
// re-parented to it. `make pause-image` ships it FROM scratch for the
// lab's containerd (sandbox_image); podrouter's own image does not carry
// it.
//
// Imports (podrouter): none.
package main
