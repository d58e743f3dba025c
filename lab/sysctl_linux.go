package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// The kubelet sets six kernel tunables at start (container_manager_linux.go,
// setupKernelTunables) and these are global to the machine, not per
// namespace. The lab saves the machine's values before the first kubelet
// of any lab starts and puts back, when the last node runtime on the
// machine is torn down, every value the kubelets left as they set it. The
// record is machine-wide and locked, so labs in parallel (tests) neither
// restore under each other's kubelets nor save each other's values.
var kubeletSysctls = map[string]string{
	"vm/overcommit_memory":      "1",
	"vm/panic_on_oom":           "0",
	"kernel/panic":              "10",
	"kernel/panic_on_oops":      "1",
	"kernel/keys/root_maxkeys":  "1000000",
	"kernel/keys/root_maxbytes": "25000000",
}

// sysctlRecord is where the saved values and their users live (.json,
// only while a lab kubelet may run), sysctlLock the lock that guards it.
const (
	sysctlRecord = "/run/podrouter-lab.kubelet-sysctls"
	sysctlLock   = "/run/lock/podrouter-lab.kubelet-sysctls.lock"
)

type sysctlState struct {
	// Saved are the machine's values before any lab kubelet ran.
	Saved map[string]string `json:"saved"`
	// Users are the runtime directories of the node runtimes that may
	// have a kubelet running.
	Users []string `json:"users"`
}

// withSysctlRecord runs f on the record under an exclusive lock and
// writes back what f leaves (or removes the record when f returns nil).
func withSysctlRecord(f func(*sysctlState) *sysctlState) error {
	if err := os.MkdirAll(filepath.Dir(sysctlLock), 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(sysctlLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	var st *sysctlState
	b, err := os.ReadFile(sysctlRecord + ".json")
	switch {
	case err == nil:
		st = &sysctlState{}
		if err := json.Unmarshal(b, st); err != nil {
			return fmt.Errorf("%s.json: %w", sysctlRecord, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	st = f(st)
	if st == nil {
		if err := os.Remove(sysctlRecord + ".json"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	b, err = json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := sysctlRecord + ".json.tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, sysctlRecord+".json")
}

// acquireKubeletSysctls records user (a runtime directory) as having a
// kubelet, saving the machine's values first if it is the first.
func acquireKubeletSysctls(user string) error {
	var rerr error
	err := withSysctlRecord(func(st *sysctlState) *sysctlState {
		if st == nil {
			saved, err := readKubeletSysctls()
			if err != nil {
				rerr = err
				return nil
			}
			st = &sysctlState{Saved: saved}
		}
		if !slices.Contains(st.Users, user) {
			st.Users = append(st.Users, user)
		}
		return st
	})
	return errors.Join(err, rerr)
}

// readKubeletSysctls reads the machine's current value of every kubelet
// sysctl.
func readKubeletSysctls() (map[string]string, error) {
	out := map[string]string{}
	for k := range kubeletSysctls {
		b, err := os.ReadFile(filepath.Join("/proc/sys", k))
		if err != nil {
			return nil, err
		}
		out[k] = strings.TrimSpace(string(b))
	}
	return out, nil
}

// releaseKubeletSysctls drops user, and users whose directory is gone
// (labs torn down without us); when none is left it restores the saved
// values the kubelets changed.
func releaseKubeletSysctls(user string) error {
	return releaseKubeletSysctlsIf(func(u string) bool { return u == user })
}

// releaseKubeletSysctlsUnder releases every user under dir (a lab's state
// directory).
func releaseKubeletSysctlsUnder(dir string) error {
	return releaseKubeletSysctlsIf(func(u string) bool { return strings.HasPrefix(u, dir+"/") })
}

func releaseKubeletSysctlsIf(drop func(user string) bool) error {
	if _, err := os.Stat(sysctlRecord + ".json"); errors.Is(err, os.ErrNotExist) {
		return nil // no lab kubelet ran since the last restore: nothing to release
	}
	var errs []error
	err := withSysctlRecord(func(st *sysctlState) *sysctlState {
		if st == nil {
			return nil
		}
		st.Users = slices.DeleteFunc(st.Users, func(u string) bool {
			_, err := os.Stat(u)
			return drop(u) || errors.Is(err, os.ErrNotExist)
		})
		if len(st.Users) > 0 {
			return st
		}
		for k, v := range st.Saved {
			p := filepath.Join("/proc/sys", k)
			cur, err := os.ReadFile(p)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			// Only what is still the kubelet's value: a change someone
			// made since is theirs to keep.
			if c := strings.TrimSpace(string(cur)); c != v && c == kubeletSysctls[k] {
				if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
					errs = append(errs, fmt.Errorf("restore %s=%s: %w", k, v, err))
				}
			}
		}
		if len(errs) > 0 {
			return st // keep the record: a later teardown tries again
		}
		return nil
	})
	return errors.Join(append(errs, err)...)
}
