// Package imports holds the test that keeps podrouter's layering true:
// every package has a doc.go whose "Imports (podrouter):" line lists the
// podrouter packages it may import, and the code imports nothing else of
// podrouter; each heavy library stays in the one package that owns it
// (GoBGP in bgp, cilium/ebpf in datapath, client-go in k8s, …); and the
// shipped binary links neither the lab nor libcni.
//
// Owns: the import rules' test.
//
// Imports (podrouter): none.
package imports
