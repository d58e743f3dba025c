package lab

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// mountBPFFS mounts a bpffs at s.BPFFSDir() unless one is there already.
func (s Spec) mountBPFFS() error {
	dir := s.BPFFSDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs at %s: %w", dir, err)
	}
	return nil
}

// unmountBPFFS unmounts the lab's bpffs (every mount stacked there): its
// pins go, and with them any tcx link no process holds.
func (s Spec) unmountBPFFS() error {
	dir := s.BPFFSDir()
	for range 8 {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
			return nil // not mounted (or gone)
		}
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("unmount bpffs at %s: %w", dir, err)
		}
	}
	return fmt.Errorf("bpffs at %s still mounted", dir)
}
