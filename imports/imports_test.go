package imports

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/podrouter/podrouter"

// owners: a library (import path prefix) may be imported only by these
// packages (their non-test files; tests use harnesses freely).
var owners = map[string][]string{
	"github.com/osrg/gobgp/":                 {"bgp", "bgp/bgptest"}, // bgptest: the hostile peer crafts messages with GoBGP's packet library
	"github.com/cilium/ebpf":                 {"datapath"},
	"github.com/vishvananda/netlink":         {"routes", "datapath", "lab"},              // datapath: endpoint discovery, neighbour MACs
	"k8s.io/client-go/":                      {"k8s", "k8s/k8stest", "k8s/apply", "lab"}, // harnesses: apply, the Kubernetes lab
	"k8s.io/api/":                            {"k8s", "k8s/k8stest", "lab"},
	"k8s.io/apimachinery/":                   {"k8s", "k8s/k8stest", "k8s/apply", "lab"},
	"k8s.io/klog/":                           {"k8s"},
	"github.com/containernetworking/cni":     {"lab"},
	"github.com/spf13/cobra":                 {"cmd/podrouter", "cmd/podrouter-lab"},
	"github.com/prometheus/client_golang/":   {"metrics"},
	"github.com/google/go-containerregistry": {"tools/image"},
	"github.com/podrouter/podrouter/lab":     {"lab", "cmd/podrouter-lab", "cmd/podrouter-bench"},
	"github.com/podrouter/podrouter/daemon":  {"cmd/podrouter"},
}

type pkg struct {
	ImportPath string
	Dir        string
	Name       string
	GoFiles    []string
	Imports    []string
}

func goList(t *testing.T, args ...string) []pkg {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json=ImportPath,Dir,Name,GoFiles,Imports"}, args...)...)
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

var marker = regexp.MustCompile(`(?s)Imports \(podrouter\):(.*?)\.(\s|$)`)

// allowed reads the podrouter packages a package's doc.go lets it import.
func allowed(t *testing.T, dir string) ([]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, "doc.go"), nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		return nil, err
	}
	if f.Doc == nil {
		return nil, errors.New("doc.go has no package comment")
	}
	m := marker.FindStringSubmatch(f.Doc.Text())
	if m == nil {
		return nil, errors.New(`doc.go does not say what the package may import ("Imports (podrouter): a, b." or "none.")`)
	}
	list := regexp.MustCompile(`\([^)]*\)`).ReplaceAllString(m[1], "") // asides
	var out []string
	for _, w := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
		if w != "none" {
			out = append(out, w)
		}
	}
	return out, nil
}

// TestImportRules: the imports obey every package's doc.go and the
// libraries' owners.
func TestImportRules(t *testing.T) {
	pkgs := goList(t, "./...")
	if len(pkgs) < 15 {
		t.Fatalf("go list found %d packages", len(pkgs))
	}
	for _, p := range pkgs {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		ok, err := allowed(t, p.Dir)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		for _, imp := range p.Imports {
			if dep, ours := strings.CutPrefix(imp, module+"/"); ours && !slices.Contains(ok, dep) {
				t.Errorf("%s imports %s; its doc.go allows only %q", rel, dep, ok)
			}
			for lib, pkgs := range owners {
				if strings.HasPrefix(imp, lib) && !slices.Contains(pkgs, rel) {
					t.Errorf("%s imports %s, which only %q may import", rel, imp, pkgs)
				}
			}
		}
	}
}

// TestShippedBinaryDeps: the shipped binary links neither the lab nor
// libcni nor the test harnesses, nor client-go's clientset and informer
// factory, which register every API group (k8s talks core/v1 over a REST
// client: the binary is about half the size).
func TestShippedBinaryDeps(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./cmd/podrouter")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, module+"/daemon") {
		t.Fatalf("go list -deps ./cmd/podrouter lacks the daemon: %d deps", len(deps))
	}
	for _, bad := range []string{module + "/lab", "github.com/containernetworking/cni", module + "/k8s/k8stest", module + "/k8s/apply", module + "/deploy/", module + "/metrics/promtest",
		"sigs.k8s.io/kustomize", "k8s.io/client-go/kubernetes", "k8s.io/client-go/informers", "k8s.io/api/apps", "k8s.io/api/networking"} {
		for _, d := range deps {
			if strings.HasPrefix(d, bad) {
				t.Errorf("the shipped binary links %s", d)
			}
		}
	}
}
