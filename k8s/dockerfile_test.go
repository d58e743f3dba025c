package k8s_test

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfileBuild: the Dockerfile is not run here (its build stage
// pulls a Go image); what it ships is, and tools/image/make_test.go
// checks that `make image` builds its final stage. The build stage must run
// `make release`, and `make release` must produce static, stripped podrouter
// and gobgp binaries (no ELF interpreter, no shared libraries: the final
// stage is FROM scratch) that run.
func TestDockerfileBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two binaries; skipped with -short")
	}
	df, err := os.ReadFile("../deploy/kubernetes/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`(?m)^RUN make release RELEASE_DIR=/out VERSION=\$\{VERSION\}$`, `(?m)^FROM scratch$`,
		`(?m)^COPY --from=build /out/podrouter /usr/local/bin/podrouter$`, `(?m)^COPY --from=build /out/gobgp /usr/local/bin/gobgp$`} {
		if !regexp.MustCompile(want).Match(df) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
	out := t.TempDir()
	cmd := exec.Command("make", "-C", "..", "release", "RELEASE_DIR="+out, "VERSION=v0.0.0-test")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make release: %v\n%s", err, b)
	}
	for _, bin := range []string{"podrouter", "gobgp"} {
		path := filepath.Join(out, bin)
		f, err := elf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s has an ELF interpreter: not static", bin)
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("%s needs shared libraries %v", bin, libs)
		}
		if f.Section(".symtab") != nil {
			t.Errorf("%s is not stripped", bin)
		}
		f.Close()
	}
	v, err := exec.Command(filepath.Join(out, "podrouter"), "version").Output()
	if err != nil || strings.TrimSpace(string(v)) != "v0.0.0-test" {
		t.Errorf("podrouter version = %q, %v", v, err)
	}
	if b, err := exec.Command(filepath.Join(out, "gobgp"), "--help").CombinedOutput(); err != nil || !strings.Contains(string(b), "neighbor") {
		t.Errorf("gobgp --help: %v\n%.300s", err, b)
	}
}
