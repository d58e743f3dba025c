package datapath

// Regenerate the BPF objects and their Go bindings (needs clang and the
// Debian multiarch kernel headers). The outputs are committed so that a
// plain `go build` needs no clang.
//
//go:generate go tool bpf2go -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3 -idirafter /usr/include/x86_64-linux-gnu" -type pr_ct_key -type pr_ct_entry -type pr_addr_key -type pr_endpoint -type pr_nexthop -type pr_lpm_key -type pr_counter -type pr_trace_cfg -type pr_event -type pr_dir -type pr_reason -type pr_ct_verdict -type pr_event_type -type pr_ct_flags -type pr_event_hdrs -type pr_kct_mode -no-global-types fromEndpoint ../bpf/from_endpoint.c -- -I../bpf
//go:generate go tool bpf2go -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -mcpu=v3 -idirafter /usr/include/x86_64-linux-gnu" fromNetwork ../bpf/from_network.c -- -I../bpf
