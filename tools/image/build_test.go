package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// writeFiles makes name -> content files under dir with the given mode
// and modification time.
func writeFiles(t *testing.T, dir string, files map[string]string, mode os.FileMode, mtime time.Time) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // umask may have cut it
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

func testSpec(dir string) Spec {
	return Spec{
		Ref:        "example.org/test/app:1",
		Files:      []File{{filepath.Join(dir, "app"), "/usr/local/bin/app"}, {filepath.Join(dir, "conf"), "/etc/app/conf"}},
		Entrypoint: []string{"/usr/local/bin/app"},
		Cmd:        []string{"serve"},
		Env:        []string{"PATH=/usr/local/bin"},
		Labels:     map[string]string{"org.opencontainers.image.title": "app"},
		Created:    time.Unix(1700000000, 0),
		Arch:       runtime.GOARCH,
	}
}

// archive builds s and returns the archive bytes and the manifest digest.
func archive(t *testing.T, s Spec) ([]byte, v1.Hash) {
	t.Helper()
	img, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	d, err := WriteArchive(&b, img, s.Ref, s.Created)
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), d
}

// TestReproducible: the same content gives the same archive, byte for
// byte, whatever the source files' paths, times and permission bits (other
// than executable) and the builder's time zone; any change of content,
// name or time stamp gives another digest.
func TestReproducible(t *testing.T) {
	files := map[string]string{"app": "#!/bin/true\nbinary stand-in\n", "conf": "key: value\n"}
	a, b := t.TempDir(), t.TempDir()
	writeFiles(t, a, files, 0o755, time.Unix(1, 0))
	writeFiles(t, b, files, 0o700, time.Now())
	if err := os.Chmod(filepath.Join(a, "conf"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(b, "conf"), 0o600); err != nil {
		t.Fatal(err)
	}
	arcA, dA := archive(t, testSpec(a))
	t.Setenv("TZ", "Pacific/Kiritimati")
	arcB, dB := archive(t, testSpec(b))
	if dA != dB || !bytes.Equal(arcA, arcB) {
		t.Fatalf("same content, different images: %s (%d bytes) vs %s (%d bytes)", dA, len(arcA), dB, len(arcB))
	}
	t.Logf("digest %s, archive %d bytes, sha256 %x", dA, len(arcA), sha256.Sum256(arcA))

	changed := map[string]Spec{}
	c := t.TempDir()
	writeFiles(t, c, map[string]string{"app": files["app"] + "x", "conf": files["conf"]}, 0o755, time.Unix(1, 0))
	changed["content"] = testSpec(c)
	s := testSpec(a)
	s.Created = s.Created.Add(time.Second)
	changed["created"] = s
	s = testSpec(a)
	s.Files[1].Dst = "/etc/app/conf2"
	changed["path"] = s
	s = testSpec(a)
	s.Entrypoint = []string{"/usr/local/bin/app", "-v"}
	changed["entrypoint"] = s
	for what, s := range changed {
		if _, d := archive(t, s); d == dA {
			t.Errorf("changing the %s kept digest %s", what, d)
		}
	}
}

// TestArchiveReadable reads the archive back the two ways runtimes do: as
// an OCI image layout (index.json; containerd, podman) and as a docker
// save archive (manifest.json; docker), with go-containerregistry's own
// readers, and checks they are the same image with the right content.
func TestArchiveReadable(t *testing.T) {
	src := t.TempDir()
	files := map[string]string{"app": "binary stand-in\n", "conf": "key: value\n"}
	writeFiles(t, src, files, 0o755, time.Now())
	if err := os.Chmod(filepath.Join(src, "conf"), 0o640); err != nil {
		t.Fatal(err)
	}
	s := testSpec(src)
	arc, digest := archive(t, s)
	path := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(path, arc, 0o644); err != nil {
		t.Fatal(err)
	}

	// The OCI layout.
	dir := t.TempDir()
	untar(t, arc, dir)
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != digest {
		t.Fatalf("index.json: %+v, want one manifest %s", im.Manifests, digest)
	}
	wantAnn := map[string]string{"io.containerd.image.name": "example.org/test/app:1", "org.opencontainers.image.ref.name": "1"}
	if !reflect.DeepEqual(im.Manifests[0].Annotations, wantAnn) {
		t.Errorf("index annotations %v, want %v", im.Manifests[0].Annotations, wantAnn)
	}
	oci, err := idx.Image(digest)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := oci.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH || !cf.Created.Time.Equal(s.Created) ||
		!reflect.DeepEqual(cf.Config.Entrypoint, s.Entrypoint) || !reflect.DeepEqual(cf.Config.Cmd, s.Cmd) ||
		!reflect.DeepEqual(cf.Config.Env, s.Env) || !reflect.DeepEqual(cf.Config.Labels, s.Labels) {
		t.Errorf("config: %+v", cf)
	}
	got := extract(t, oci)
	want := map[string]string{
		"etc": "dir 0755", "etc/app": "dir 0755", "etc/app/conf": "file 0644 key: value\n",
		"usr": "dir 0755", "usr/local": "dir 0755", "usr/local/bin": "dir 0755", "usr/local/bin/app": "file 0755 binary stand-in\n",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("layer content:\n got %v\nwant %v", got, want)
	}

	// The docker save view of the same archive: the same config and layer.
	var dm []dockerManifest
	if err := json.Unmarshal(untarFile(t, arc, "manifest.json"), &dm); err != nil {
		t.Fatal(err)
	}
	if len(dm) != 1 || !reflect.DeepEqual(dm[0].RepoTags, []string{"example.org/test/app:1"}) {
		t.Fatalf("manifest.json: %+v", dm)
	}
	docker, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	dcfg, err := docker.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	ocfg, err := oci.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dcfg, ocfg) {
		t.Errorf("docker and OCI views carry different configs")
	}
	if d := extract(t, docker); !reflect.DeepEqual(d, want) {
		t.Errorf("docker view layer content: %v", d)
	}
	// Every blob is named by its sha256.
	for _, f := range append([]string{dm[0].Config}, dm[0].Layers...) {
		sum := sha256.Sum256(untarFile(t, arc, f))
		if "blobs/sha256/"+hex.EncodeToString(sum[:]) != f {
			t.Errorf("%s holds content with sha256 %x", f, sum)
		}
	}
}

// TestNames: the forms of a reference each runtime reads.
func TestNames(t *testing.T) {
	for ref, want := range map[string]names{
		"podrouter:latest":            {full: "docker.io/library/podrouter:latest", familiar: "podrouter:latest", tag: "latest"},
		"localhost/podrouter/pause:1": {full: "localhost/podrouter/pause:1", familiar: "localhost/podrouter/pause:1", tag: "1"},
		"example.org:5000/a/b:v1.2":   {full: "example.org:5000/a/b:v1.2", familiar: "example.org:5000/a/b:v1.2", tag: "v1.2"},
		"docker.io/me/x:2":            {full: "docker.io/me/x:2", familiar: "me/x:2", tag: "2"},
	} {
		got, err := parseRef(ref)
		if err != nil || got != want {
			t.Errorf("parseRef(%q) = %+v, %v; want %+v", ref, got, err, want)
		}
	}
	for _, bad := range []string{"podrouter", "Podrouter:1", "a/b@sha256:" + strings.Repeat("0", 64), "x:", ""} {
		if _, err := parseRef(bad); err == nil {
			t.Errorf("parseRef(%q): no error", bad)
		}
	}
}

// TestRejects: what cannot make a working image is refused with the
// reason, before anything is written.
func TestRejects(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a": "a", "b": "b"}, 0o755, time.Now())
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	dynamic := "/bin/true" // Debian's coreutils: dynamically linked
	for name, tc := range map[string]struct {
		files []File
		want  string
	}{
		"none":           {nil, "at least one file"},
		"twice":          {[]File{{a, "/x/a"}, {b, "/x/a"}}, "given twice"},
		"file is dir":    {[]File{{a, "/x/a"}, {b, "/x/a/b"}}, "is a file, and a directory"},
		"dir is file":    {[]File{{a, "/x/a/b"}, {b, "/x/a"}}, "is a directory of another file"},
		"missing source": {[]File{{filepath.Join(dir, "nope"), "/a"}}, "no such file"},
		"not regular":    {[]File{{dir, "/a"}}, "not a regular file"},
		"dynamic":        {[]File{{dynamic, "/true"}}, "CGO_ENABLED=0"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Build(Spec{Ref: "x:1", Files: tc.files, Arch: runtime.GOARCH})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build: %v, want an error with %q", err, tc.want)
			}
		})
	}
	if _, err := Build(Spec{Ref: "x:1", Files: []File{{dynamic, "/true"}}, Arch: "s390x"}); err == nil || !strings.Contains(err.Error(), "built for") {
		t.Errorf("wrong architecture: %v", err)
	}
	for _, bad := range []string{"a", "=b", "a=", "a=rel/path", "a=/x/../y", "a=/"} {
		if _, err := ParseFile(bad); err == nil {
			t.Errorf("ParseFile(%q): no error", bad)
		}
	}
}

// extract lists the image's files: name -> "dir MODE" or "file MODE
// content", checking that every entry is root-owned.
func extract(t *testing.T, img v1.Image) map[string]string {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 {
		t.Fatalf("%d layers, want 1", len(ls))
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s owned by %d:%d", h.Name, h.Uid, h.Gid)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			out[h.Name] = "dir " + modeString(h.Mode)
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			out[h.Name] = "file " + modeString(h.Mode) + " " + string(b)
		default:
			t.Errorf("%s: unexpected type %c", h.Name, h.Typeflag)
		}
	}
	return out
}

func modeString(m int64) string { return fmt.Sprintf("%04o", m) }

// untar writes the archive's entries under dir, in order, refusing names
// that leave dir.
func untar(t *testing.T, arc []byte, dir string) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(arc))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, h.Name)
		if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
			t.Fatalf("archive entry %q leaves the directory", h.Name)
		}
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func untarFile(t *testing.T, arc []byte, name string) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(arc))
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in the archive: %v", name, err)
		}
		if h.Name == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}
