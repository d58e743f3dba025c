package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRuntimes loads `make image` and `make pause-image` into the real
// container runtimes of this machine (Debian's containerd, podman and
// docker, from make deps) and runs them: the image must load unchanged
// under its name and digest and `podrouter version` must print make
// release's version. Each runtime runs in a private mount and network
// namespace whose /run (and other state) is a temporary directory, with
// its containers under a cgroup of the test's own; all of it is removed.
func TestRuntimes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the images and starts container runtimes; skipped with -short")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs as root: the runtime test must run")
		}
		t.Skip("needs root: starts containerd, podman and dockerd")
	}
	for _, bin := range []string{"containerd", "ctr", "runc", "podman", "dockerd", "docker", "unshare", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: run `make deps` (APT_PKGS has containerd, runc, podman, docker.io)", bin)
		}
	}
	dir, archive, digest := makeImage(t)
	if b, err := exec.Command("make", "-C", "../..", "pause-image", "RELEASE_DIR="+dir).CombinedOutput(); err != nil {
		t.Fatalf("make pause-image: %v\n%s", err, b)
	}
	pauseArchive := filepath.Join(dir, "pause-image.tar")
	version, err := exec.Command(filepath.Join(dir, "podrouter"), "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(version))

	t.Run("containerd", func(t *testing.T) {
		d := t.TempDir()
		cg := testCgroup(t)
		conf := fmt.Sprintf(`version = 2
root = %q
state = "/run/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "/run/containerd/containerd.sock"
`, filepath.Join(d, "root"))
		writeFile(t, filepath.Join(d, "config.toml"), conf)
		pid := startIsolated(t, d, []string{"/run"}, "containerd", "--config", filepath.Join(d, "config.toml"))
		waitSocket(t, filepath.Join(d, "run/containerd/containerd.sock"), d)
		// ctr makes its fifos under /run/containerd: it must see the
		// daemon's /run.
		ctr := func(args ...string) (string, error) {
			return output(exec.Command("nsenter", append([]string{"-t", fmt.Sprint(pid), "-m", "--", "ctr", "-n", "k8s.io"}, args...)...))
		}
		out, err := ctr("images", "import", archive)
		if err != nil || !strings.Contains(out, "docker.io/library/podrouter:latest ("+digest+")") {
			t.Fatalf("ctr images import: %v\n%s", err, out)
		}
		for _, c := range [][]string{{"podrouter", "version"}, {"gobgp", "--version"}} {
			out, err := ctr(append([]string{"run", "--rm", "--cgroup", cg + "/" + c[0], "docker.io/library/podrouter:latest", c[0]}, c...)...)
			if err != nil {
				t.Fatalf("ctr run %s: %v\n%s", c, err, out)
			}
			t.Logf("ctr run podrouter:latest %s: %s", strings.Join(c, " "), strings.TrimSpace(out))
			if c[0] == "podrouter" && strings.TrimSpace(out) != want {
				t.Errorf("podrouter version in the image: %q, make release's: %q", out, want)
			}
		}

		// The pause image: imports, runs, exits 0 at once on SIGTERM.
		if out, err := ctr("images", "import", pauseArchive); err != nil || !strings.Contains(out, "localhost/podrouter/pause:1") {
			t.Fatalf("ctr images import pause: %v\n%s", err, out)
		}
		run := exec.Command("nsenter", "-t", fmt.Sprint(pid), "-m", "--", "ctr", "-n", "k8s.io", "run", "--rm", "--cgroup", cg+"/pause",
			"localhost/podrouter/pause:1", "pause")
		var runOut bytes.Buffer
		run.Stdout, run.Stderr = &runOut, &runOut
		if err := run.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- run.Wait() }()
		deadline := time.Now().Add(20 * time.Second)
		for {
			out, _ := ctr("task", "ls")
			if strings.Contains(out, "RUNNING") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pause never ran: %s\n%s", out, runOut.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		if out, err := ctr("task", "kill", "-s", "SIGTERM", "pause"); err != nil {
			t.Fatalf("ctr task kill: %v\n%s", err, out)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("pause on SIGTERM: %v (want exit 0)\n%s", err, runOut.String())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("pause still running 10s after SIGTERM")
		}
	})

	t.Run("podman", func(t *testing.T) {
		d := t.TempDir()
		cg := testCgroup(t)
		// podman keeps a blob cache in /var/lib/containers whatever its
		// --root: give it a private one.
		mountpoint(t, "/var/lib/containers")
		podman := func(args ...string) (string, error) {
			script := fmt.Sprintf("mount --bind %s/run /run && mount --bind %s/lib /var/lib/containers && exec podman "+
				"--storage-driver overlay --cgroup-manager cgroupfs --events-backend file \"$@\"", d, d)
			return output(exec.Command("unshare", append([]string{"-m", "-n", "--propagation", "private", "--", "sh", "-c", script, "podman"}, args...)...))
		}
		for _, sub := range []string{"run", "lib"} {
			if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		out, err := podman("load", "-i", archive)
		if err != nil || !strings.Contains(out, "Loaded image: docker.io/library/podrouter:latest") {
			t.Fatalf("podman load: %v\n%s", err, out)
		}
		out, err = podman("image", "inspect", "--format", "{{.Digest}}", "podrouter:latest")
		if err != nil || strings.TrimSpace(out) != digest {
			t.Errorf("podman image digest %q, built %s: %v", out, digest, err)
		}
		// podman raises RLIMIT_NOFILE and RLIMIT_NPROC to 1048576 for
		// containers by default, which needs CAP_SYS_RESOURCE (root lacks
		// it on these machines): ask for modest limits instead.
		out, err = podman("run", "--rm", "--network", "none", "--cgroup-parent", cg,
			"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
			"podrouter:latest", "version")
		if err != nil || strings.TrimSpace(out) != want {
			t.Errorf("podman run podrouter:latest version: %q, %v (want %q)", out, err, want)
		}
		t.Logf("podman run podrouter:latest version: %s", strings.TrimSpace(out))
	})

	t.Run("docker", func(t *testing.T) {
		d := t.TempDir()
		cg := testCgroup(t)
		conf := fmt.Sprintf(`{"data-root": %q, "exec-root": "/run/docker", "pidfile": "/run/docker.pid",
  "hosts": ["unix:///run/docker.sock"], "iptables": false, "ip6tables": false, "bridge": "none",
  "cgroup-parent": %q, "storage-driver": "overlay2"}`, filepath.Join(d, "data"), cg)
		writeFile(t, filepath.Join(d, "daemon.json"), conf)
		// dockerd writes /etc/docker/key.json whatever its config.
		mountpoint(t, "/etc/docker")
		startIsolated(t, d, []string{"/run", "/etc/docker"}, "dockerd", "--config-file", filepath.Join(d, "daemon.json"))
		waitSocket(t, filepath.Join(d, "run/docker.sock"), d)
		docker := func(args ...string) (string, error) {
			cmd := exec.Command("docker", append([]string{"-H", "unix://" + filepath.Join(d, "run/docker.sock")}, args...)...)
			cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(d, "cli"))
			return output(cmd)
		}
		out, err := docker("load", "-i", archive)
		if err != nil || !strings.Contains(out, "Loaded image: podrouter:latest") {
			t.Fatalf("docker load: %v\n%s", err, out)
		}
		out, err = docker("run", "--rm", "--network", "none", "podrouter:latest", "version")
		if err != nil || strings.TrimSpace(out) != want {
			t.Errorf("docker run podrouter:latest version: %q, %v (want %q)", out, err, want)
		}
		t.Logf("docker run podrouter:latest version: %s", strings.TrimSpace(out))
	})
}

func output(cmd *exec.Cmd) (string, error) {
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	return b.String(), err
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startIsolated runs argv as a daemon in a new mount and network
// namespace in which each of binds (/run, ...) is dir/<base of it>. It
// returns the daemon's pid; cleanup stops it (SIGTERM, then SIGKILL) and
// waits.
func startIsolated(t *testing.T, dir string, binds []string, argv ...string) int {
	t.Helper()
	script := ""
	for _, b := range binds {
		src := filepath.Join(dir, filepath.Base(b))
		if err := os.MkdirAll(src, 0o755); err != nil {
			t.Fatal(err)
		}
		script += fmt.Sprintf("mount --bind %s %s && ", src, b)
	}
	script += `exec "$@"`
	logf, err := os.Create(filepath.Join(dir, argv[0]+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", append([]string{"-m", "-n", "--propagation", "private", "--", "sh", "-c", script, argv[0]}, argv...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }() // the exit status of a daemon we stop says nothing
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // ESRCH: gone already
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name()) // best effort, for the failure report
			t.Logf("%s log:\n%s", argv[0], tailLines(string(b), 30))
		}
	})
	return cmd.Process.Pid
}

func waitSocket(t *testing.T, path, dir string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if st, err := os.Stat(path); err == nil && st.Mode()&os.ModeSocket != 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no socket %s after 60s (logs in %s)", path, dir)
}

// mountpoint makes sure dir exists to bind over; if the test made it, its
// cleanup removes it again (only while empty: what a runtime wrote there
// went to the bound directory).
func mountpoint(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(dir); err == nil {
		return
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(dir); err != nil {
			t.Errorf("remove %s, made by the test: %v", dir, err)
		}
	})
}

// testCgroup names a cgroup for the test's containers; cleanup kills
// whatever is left in it and removes it from every v1 hierarchy (and the
// unified one).
func testCgroup(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "podrouter-imagetest-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		roots, _ := filepath.Glob("/sys/fs/cgroup/*/" + name) // constant pattern
		for _, root := range roots {
			if err := removeCgroup(root); err != nil {
				t.Errorf("cgroup %s: %v", root, err)
			}
		}
	})
	return "/" + name
}

// removeCgroup kills every process in the cgroup tree at dir and removes
// it, children first.
func removeCgroup(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			dirs = append(dirs, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		for attempt := 0; ; attempt++ {
			b, _ := os.ReadFile(filepath.Join(dirs[i], "cgroup.procs")) // gone: nothing to kill
			for _, f := range strings.Fields(string(b)) {
				var pid int
				if _, err := fmt.Sscan(f, &pid); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			err := os.Remove(dirs[i])
			if err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			if attempt == 50 {
				errs = append(errs, err)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}

func tailLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}
