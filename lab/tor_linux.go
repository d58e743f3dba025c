package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// StopToR stops ToR k's FRR daemons (bgpd, bfdd, zebra) with sig and
// waits until they are gone: SIGKILL is a crash of the ToR's control
// plane (its kernel keeps the routes zebra installed), SIGTERM a clean
// stop. Daemons that do not run are skipped.
func (l *Lab) StopToR(ctx context.Context, k int, sig syscall.Signal) error {
	dir := l.Spec.torData(k).Dir
	var pids []int
	for _, d := range []string{"bgpd", "bfdd", "zebra"} {
		pid, err := readPid(filepath.Join(dir, d+".pid"))
		if err != nil {
			return err
		}
		if pid == 0 || !alive(pid) || !inNS(pid, filepath.Join(netnsDir, l.ToRNS(k))) {
			continue
		}
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("signal %s pid %d: %w", d, pid, err)
		}
		pids = append(pids, pid)
	}
	if left := waitGone(ctx, pids, 20*time.Second); len(left) > 0 {
		return fmt.Errorf("tor%d daemons %v still running after %s", k, left, sig)
	}
	for _, d := range []string{"bgpd", "bfdd", "zebra"} {
		_ = os.Remove(filepath.Join(dir, d+".pid")) // stale after a kill
	}
	return nil
}

// StartToR starts ToR k's FRR daemons again with the lab's config.
func (l *Lab) StartToR(ctx context.Context, k int) error { return l.startFRR(ctx, k) }
