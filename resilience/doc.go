// Package resilience is the resilience and security suite (`make
// resilience`): every failure a node sees in production, tried in the
// network-namespace lab against the real daemon, real FRR ToRs, real CNI
// pods and real kernels. Each test prints one line
//
//	name: figure … target …
//
// and fails when a figure misses its target; the table of all lines is
// printed again at the end. Durations are CI-sized by default; `-long`
// (or RESILIENCE_LONG=1) runs the long versions the issue names.
//
// Imports (podrouter): lab, bgp/bgptest, api, health (tests only; the
// package has no other code).
package resilience
