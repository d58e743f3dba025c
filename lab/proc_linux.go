package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Exec runs argv inside network namespace ns (via `ip netns exec`) and
// returns its stdout. The error carries stderr.
func Exec(ctx context.Context, ns string, argv ...string) (string, error) {
	return run(ctx, nil, "ip", append([]string{"netns", "exec", ns}, argv...)...)
}

// run runs a command to completion; stdin may be nil.
func run(ctx context.Context, stdin []byte, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// startDetached starts argv inside ns in its own session, output appended
// to logPath, and writes its pid to pidPath. The process outlives us; while
// we live, a goroutine reaps it so it never lingers as a zombie.
func startDetached(ns string, argv []string, logPath, pidPath string) (int, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	return startLogged(cmd, argv[0]+" in "+ns, logPath, pidPath)
}

// startProcess starts argv in its own session, output appended to
// logPath, pid written to pidPath (the pid of argv[0], which must exec
// what it runs, not fork it). While we live, a goroutine reaps it.
func startProcess(argv []string, logPath, pidPath string) (int, error) {
	return startLogged(exec.Command(argv[0], argv[1:]...), argv[0], logPath, pidPath)
}

// startLogged starts cmd in its own session with its output appended to
// logPath and its pid written to pidPath, and reaps it in a goroutine;
// what names it in the start error.
func startLogged(cmd *exec.Cmd, what, logPath, pidPath string) (int, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", what, err)
	}
	pid := cmd.Process.Pid
	go cmd.Wait() //nolint:errcheck // only reaps; liveness is checked through /proc
	if err := os.WriteFile(pidPath, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL) // best effort: do not leave an untracked process
		return 0, err
	}
	return pid, nil
}

// alive reports whether pid exists and has not finished exiting: a
// zombie whose other threads are still going down (they may still hold
// its sockets and files) counts as alive.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	if st := b[i+2]; st != 'Z' && st != 'X' {
		return true
	}
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	return err == nil && len(tasks) > 1
}

// waitGone polls until none of pids is alive or the timeout passes; it
// returns the ones still alive.
func waitGone(ctx context.Context, pids []int, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		var left []int
		for _, p := range pids {
			if alive(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return left
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// terminate sends SIGTERM, waits up to grace, then SIGKILL; it returns an
// error naming processes that survived.
func terminate(ctx context.Context, pids []int, grace time.Duration) error {
	if len(pids) == 0 {
		return nil
	}
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGTERM) // ESRCH: already gone
	}
	left := waitGone(ctx, pids, grace)
	for _, p := range left {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	left = waitGone(context.WithoutCancel(ctx), left, 3*time.Second)
	if len(left) > 0 {
		return fmt.Errorf("processes %v survived SIGKILL", left)
	}
	return nil
}

// readPid reads a pidfile; (0, nil) if it does not exist.
func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("pidfile %s: bad content %q", path, b)
	}
	return pid, nil
}

// nsID identifies a network namespace by device and inode of its nsfs file.
type nsID struct{ dev, ino uint64 }

func statNS(path string) (nsID, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return nsID{}, false
	}
	return nsID{uint64(st.Dev), st.Ino}, true
}

// procEntry is what we know about one process for the ownership checks.
type procEntry struct {
	pid     int
	ns      nsID
	cmdline string
}

func listProcs() []procEntry {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []procEntry
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		id, ok := statNS(filepath.Join("/proc", e.Name(), "ns", "net"))
		if !ok {
			continue
		}
		cl, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")) // vanished: empty, harmless
		out = append(out, procEntry{pid: pid, ns: id, cmdline: string(bytes.ReplaceAll(cl, []byte{0}, []byte{' '}))})
	}
	return out
}

// ownedProcs returns the live processes that belong to a lab: every process
// inside one of its namespaces, plus any daemon whose command line carries
// a config file from its state directory or one of its FRR pathspaces
// (that catches daemons whose namespace was already unmounted by a crashed
// run). A shell that merely tails a lab log is not matched.
func ownedProcs(nsPaths []string, stateDir string, frrNames []string) []int {
	ids := map[nsID]bool{}
	for _, p := range nsPaths {
		if id, ok := statNS(p); ok {
			ids[id] = true
		}
	}
	var out []int
	for _, pe := range listProcs() {
		own := ids[pe.ns]
		// --kubeconfig, --data-dir, --tls-cert-file: the Kubernetes lab's
		// control plane (controller-manager, scheduler; etcd; apiserver).
		for _, flag := range []string{" --config ", " -c ", " -f ", " --kubeconfig ", " --data-dir ", " --tls-cert-file "} {
			if strings.Contains(pe.cmdline, flag+stateDir+"/") {
				own = true
			}
		}
		for _, n := range frrNames {
			if strings.Contains(pe.cmdline, " -N "+n+" ") {
				own = true
			}
		}
		if own && alive(pe.pid) {
			out = append(out, pe.pid)
		}
	}
	return out
}

// inNS reports whether pid lives in the namespace mounted at nsPath.
func inNS(pid int, nsPath string) bool {
	want, ok := statNS(nsPath)
	if !ok {
		return false
	}
	got, ok := statNS(filepath.Join("/proc", strconv.Itoa(pid), "ns", "net"))
	return ok && got == want
}

// tail is the last n lines of the file at path ("" when unreadable).
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return lastLines(string(b), n)
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// ProcRSS reads a process's resident set size from /proc ("?" when
// unknown).
func ProcRSS(pid int) string {
	if pid <= 0 {
		return "?"
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
