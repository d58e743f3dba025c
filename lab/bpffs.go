package lab

import "path/filepath"

// BPFFSDir is where Up mounts the lab's bpffs, in the mount namespace Up
// runs in. Node daemons run under `ip netns exec`, which remounts /sys in
// a private mount namespace per process, so /sys/fs/bpf there is neither
// a bpffs nor shared across a daemon restart; this mount is inherited by
// every daemon and outlives each of them.
func (s Spec) BPFFSDir() string { return filepath.Join(s.StateDir(), "bpffs") }

// NodePinDir is node n's datapath.pinDir, on the lab's bpffs.
func (s Spec) NodePinDir(n int) string { return filepath.Join(s.BPFFSDir(), NodeName(n)) }
