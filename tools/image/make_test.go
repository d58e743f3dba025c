package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// makeImage runs `make image` with its output in a fresh directory and
// returns the archive's path and the digest make recorded.
func makeImage(t *testing.T) (dir, archive, digest string) {
	t.Helper()
	dir = t.TempDir()
	start := time.Now()
	cmd := exec.Command("make", "-C", "../..", "image", "RELEASE_DIR="+dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, b)
	}
	archive = filepath.Join(dir, "podrouter-image.tar")
	d, err := os.ReadFile(archive + ".digest")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("make image in %s: %s", time.Since(start).Round(100*time.Millisecond), strings.TrimSpace(string(d)))
	return dir, archive, strings.TrimSpace(string(d))
}

// TestMakeImageReproducible builds podrouter's image twice with `make
// image`, binaries included, into two directories: the same sources must
// give the same digest and the same archive bytes. The image must be the
// final stage of deploy/kubernetes/Dockerfile: the same files from `make
// release` at the same paths, the same ENV and ENTRYPOINT.
func TestMakeImageReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds podrouter twice; skipped with -short")
	}
	dirA, arcA, dA := makeImage(t)
	_, arcB, dB := makeImage(t)
	if dA != dB {
		t.Fatalf("two builds of the same sources: digests %s and %s", dA, dB)
	}
	a, err := os.ReadFile(arcA)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(arcB)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("same digest %s, different archives", dA)
	}

	img := layoutImage(t, a, dA)
	df, err := os.ReadFile("../../deploy/kubernetes/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	stage := finalStage(t, string(df))
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cf.Config.Entrypoint, stage.entrypoint) {
		t.Errorf("entrypoint %q, Dockerfile %q", cf.Config.Entrypoint, stage.entrypoint)
	}
	if !reflect.DeepEqual(cf.Config.Env, stage.env) {
		t.Errorf("env %q, Dockerfile %q", cf.Config.Env, stage.env)
	}
	files := extract(t, img)
	for dst, src := range stage.copies {
		want, err := os.ReadFile(filepath.Join(dirA, src))
		if err != nil {
			t.Fatal(err)
		}
		if files[strings.TrimPrefix(dst, "/")] != "file 0755 "+string(want) {
			t.Errorf("%s in the image is not make release's %s", dst, src)
		}
		delete(files, strings.TrimPrefix(dst, "/"))
	}
	for name, what := range files {
		if !strings.HasPrefix(what, "dir ") {
			t.Errorf("%s: in the image, not in the Dockerfile's final stage", name)
		}
	}
}

type dockerStage struct {
	copies     map[string]string // image path -> file in make release's output
	env        []string
	entrypoint []string
}

// finalStage reads the Dockerfile's last stage, which must be FROM
// scratch with COPY --from=build /out/FILE DST, ENV K=V and ENTRYPOINT
// [...] lines only.
func finalStage(t *testing.T, df string) dockerStage {
	t.Helper()
	i := strings.LastIndex(df, "\nFROM ")
	if i < 0 || !strings.HasPrefix(df[i:], "\nFROM scratch\n") {
		t.Fatal("the Dockerfile's last stage is not FROM scratch")
	}
	s := dockerStage{copies: map[string]string{}}
	copyRE := regexp.MustCompile(`^COPY --from=build /out/([a-z0-9-]+) (/\S+)$`)
	for _, line := range strings.Split(df[i+len("\nFROM scratch\n"):], "\n") {
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case copyRE.MatchString(line):
			m := copyRE.FindStringSubmatch(line)
			s.copies[m[2]] = m[1]
		case strings.HasPrefix(line, "ENV "):
			s.env = append(s.env, strings.TrimPrefix(line, "ENV "))
		case strings.HasPrefix(line, "ENTRYPOINT "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "ENTRYPOINT ")), &s.entrypoint); err != nil {
				t.Fatalf("ENTRYPOINT: %v", err)
			}
		default:
			t.Fatalf("final stage line %q: tools/image/make_test.go does not know it (teach it, and make image)", line)
		}
	}
	if len(s.copies) == 0 || len(s.entrypoint) == 0 {
		t.Fatalf("final stage without COPY or ENTRYPOINT: %+v", s)
	}
	return s
}

// layoutImage opens the image digest of an archive as an OCI layout.
func layoutImage(t *testing.T, arc []byte, digest string) v1.Image {
	t.Helper()
	dir := t.TempDir()
	untar(t, arc, dir)
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := v1.NewHash(digest)
	if err != nil {
		t.Fatal(err)
	}
	img, err := idx.Image(h)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
