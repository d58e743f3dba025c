// Command podrouter-lab drives the network-namespace lab (package lab): a
// small leaf/spine rack on this machine with FRR ToRs, nodes running
// podrouter (or BIRD) and CNI pods. It is a development and test tool and
// is not in the shipped binary or image: `make lab`, `make lab-down`,
// `make lab-status` and `make converge` run it.
//
//	podrouter-lab up [--name lab] [--tors 1|2] [--datapath] [--bfd] [--kubernetes [--proxy-mode iptables|nftables]] …
//	podrouter-lab up --kubernetes --kubelets --images A.tar,B.tar,C.tar [--overlay deploy/lab]
//	                 (real nodes: containerd + kubelet each; podrouter from the overlay)
//	podrouter-lab backend --name N   (the lab pods' server; the Kubernetes lab starts it)
//	podrouter-lab status|down [--name lab]
//	podrouter-lab converge [--runs 10]
//
// Owns: the lab's command line.
//
// Imports (podrouter): lab.
package main
