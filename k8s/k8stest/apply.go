package k8stest

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"

	"github.com/podrouter/podrouter/k8s/apply"
)

// Apply server-side applies every object of the given YAML manifest files
// as admin, in file order.
func (s *Server) Apply(t testing.TB, files ...string) {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		o, err := apply.Decode(f, b)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o...)
	}
	a, err := apply.New(s.Admin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(context.Background(), objs, false); err != nil {
		t.Fatal(err)
	}
}

// WriteKubeconfig writes a kubeconfig for rc (bearer token, CA, host of
// this server) to path.
func (s *Server) WriteKubeconfig(t testing.TB, path string, rc *rest.Config) {
	t.Helper()
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q, certificate-authority-data: %s}}]
users: [{name: user, user: {token: %q}}]
contexts: [{name: test, context: {cluster: test, user: user}}]
current-context: test
`, s.host, base64.StdEncoding.EncodeToString(s.ca), rc.BearerToken)
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
}
