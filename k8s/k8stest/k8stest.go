package k8stest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Server is a running etcd + kube-apiserver pair.
type Server struct {
	netns  string
	bindIP net.IP
	// Admin is a REST config for a cluster admin (group system:masters).
	Admin *rest.Config
	// Dir holds certificates, the token file, etcd's data and both logs.
	Dir  string
	host string
	ca   []byte
}

// Binaries returns the kube-apiserver and etcd paths, or why they are not
// there.
func Binaries() (apiserver, etcd string, err error) {
	apiserver = os.Getenv("KUBE_APISERVER")
	if apiserver == "" {
		root, rerr := repoRoot()
		if rerr != nil {
			return "", "", rerr
		}
		apiserver = filepath.Join(root, "bin", "kube-apiserver")
	}
	if _, err := os.Stat(apiserver); err != nil {
		return "", "", fmt.Errorf("kube-apiserver binary %s missing: run `make kube` (~20 min cold, cached per machine)", apiserver)
	}
	etcd = os.Getenv("ETCD")
	if etcd == "" {
		if etcd, err = exec.LookPath("etcd"); err != nil {
			return "", "", fmt.Errorf("etcd not found: install Debian's etcd-server (make deps)")
		}
	}
	return apiserver, etcd, nil
}

// Start runs etcd and kube-apiserver for t and waits until the API server
// is ready (a few seconds).
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// Options place the API server elsewhere than the test's own loopback.
type Options struct {
	// NetNS runs etcd and kube-apiserver inside this network namespace
	// (as for `ip netns exec`); the Admin config then dials from inside it.
	NetNS string
	// BindIP is the apiserver's address (default 127.0.0.1). With NetNS, an
	// address of that namespace other namespaces can route to.
	BindIP string
}

// StartWith is Start with Options.
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.BindIP == "" {
		opts.BindIP = "127.0.0.1"
	}
	if testing.Short() {
		t.Skip("runs etcd and kube-apiserver; skipped in -short mode")
	}
	apiserverBin, etcdBin, err := Binaries()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v (CI must build it before the tests)", err)
		}
		t.Skipf("no API server to test against: %v", err)
	}
	dir := t.TempDir()
	s := &Server{Dir: dir, netns: opts.NetNS, bindIP: net.ParseIP(opts.BindIP)}
	start := time.Now()
	ports := []int{2379, 2380, 6443} // a namespace of the test's own: nothing else there
	if opts.NetNS == "" {
		ports = freePorts(t, 3)
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	startProc(t, opts.NetNS, filepath.Join(dir, "etcd.log"), etcdBin,
		"--name", "default", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "default="+peerURL, "--log-level", "warn")

	adminToken := randToken(t)
	s.writeCerts(t)
	tokens := fmt.Sprintf("%s,admin,admin-uid,\"system:masters\"\n", adminToken)
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(tokens), 0o600); err != nil {
		t.Fatal(err)
	}
	s.host = "https://" + net.JoinHostPort(opts.BindIP, strconv.Itoa(ports[2]))
	startProc(t, opts.NetNS, filepath.Join(dir, "kube-apiserver.log"), apiserverBin,
		"--etcd-servers", etcdURL,
		"--bind-address", opts.BindIP, "--advertise-address", opts.BindIP,
		"--secure-port", strconv.Itoa(ports[2]),
		"--cert-dir", filepath.Join(dir, "certs"),
		"--tls-cert-file", filepath.Join(dir, "serving.crt"),
		"--tls-private-key-file", filepath.Join(dir, "serving.key"),
		"--token-auth-file", filepath.Join(dir, "tokens.csv"),
		"--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", filepath.Join(dir, "sa.key"),
		"--service-account-signing-key-file", filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range", "10.96.0.0/16",
		// On loopback the default reconciler refuses the advertise address.
		"--endpoint-reconciler-type", "none",
		"--profiling=false", "--v", "1")
	s.Admin = &rest.Config{
		Host:            s.host,
		BearerToken:     adminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: s.ca},
		QPS:             100, Burst: 200,
	}
	if s.netns != "" {
		s.Admin.Dial = s.dial
	}
	if opts.NetNS != "" {
		s.Admin.Dial = s.dial
	}
	s.waitReady(t, adminToken)
	t.Logf("etcd + kube-apiserver ready on %s in %s", s.host, time.Since(start).Round(10*time.Millisecond))
	return s
}

// Client is an admin clientset.
func (s *Server) Client(t testing.TB) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(s.Admin)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ServiceAccountConfig mints a token for namespace/name through the
// TokenRequest API (the ServiceAccount must exist) and returns a REST
// config that authenticates with it and nothing else.
func (s *Server) ServiceAccountConfig(t testing.TB, namespace, name string) *rest.Config {
	t.Helper()
	return s.token(t, namespace, name, nil)
}

// PodTokenConfig is ServiceAccountConfig with the token bound to pod (as
// the kubelet mints them): when the pod has a spec.nodeName, the token's
// user carries the node name (extra authentication.kubernetes.io/node-name).
func (s *Server) PodTokenConfig(t testing.TB, pod *corev1.Pod) *rest.Config {
	t.Helper()
	return s.token(t, pod.Namespace, pod.Spec.ServiceAccountName, &authenticationv1.BoundObjectReference{
		Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID,
	})
}

func (s *Server) token(t testing.TB, namespace, name string, bound *authenticationv1.BoundObjectReference) *rest.Config {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exp := int64(3600)
	tr, err := s.Client(t).CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp, BoundObjectRef: bound}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for serviceaccount %s/%s: %v", namespace, name, err)
	}
	cfg := &rest.Config{
		Host:            s.host,
		BearerToken:     tr.Status.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: s.ca},
		QPS:             100, Burst: 200,
	}
	if s.netns != "" {
		cfg.Dial = s.dial
	}
	return cfg
}

// CreateNode creates a Node with the given pod CIDRs already assigned (no
// controller-manager runs, and spec.podCIDRs can only be set once).
func (s *Server) CreateNode(t testing.TB, name string, podCIDRs []string, mutate ...func(*corev1.Node)) *corev1.Node {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDRs: podCIDRs}}
	if len(podCIDRs) > 0 {
		n.Spec.PodCIDR = podCIDRs[0]
	}
	for _, m := range mutate {
		m(n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := s.Client(t).CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
	return out
}

func (s *Server) waitReady(t testing.TB, token string) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.ca)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DialContext: s.dial}}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, s.host+"/readyz", nil) // constant URL: cannot fail
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err == nil {
			b := make([]byte, 4096)
			n, _ := resp.Body.Read(b) // best effort: only for the failure message
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b[:n])
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	logTail, _ := os.ReadFile(filepath.Join(s.Dir, "kube-apiserver.log"))
	t.Fatalf("kube-apiserver not ready after 90s: %s\nlog tail:\n%s", last, tail(string(logTail), 30))
}

// startProc runs argv with output to logPath; cleanup kills its process
// group and waits for it.
func startProc(t testing.TB, netns, logPath, bin string, args ...string) {
	t.Helper()
	if netns != "" {
		args = append([]string{"netns", "exec", netns, bin}, args...)
		bin = "ip"
	}
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // exit status is irrelevant: we killed it, or the log says why
		close(done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) // ESRCH when it died already
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath) // best effort
			t.Logf("%s (tail):\n%s", filepath.Base(logPath), tail(string(b), 20))
		}
	})
}

// writeCerts makes a CA, a serving certificate for 127.0.0.1 and a
// service-account signing key.
func (s *Server) writeCerts(t testing.TB) {
	t.Helper()
	caKey := newKey(t)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "podrouter-test-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	srvKey := newKey(t)
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), s.bindIP}, DNSNames: []string{"localhost", "kubernetes.default.svc"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	s.ca = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	saKey := newKey(t)
	for name, b := range map[string][]byte{
		"ca.crt":      s.ca,
		"serving.crt": append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}), s.ca...),
		"serving.key": keyPEM(t, srvKey),
		"sa.key":      keyPEM(t, saKey),
	} {
		if err := os.WriteFile(filepath.Join(s.Dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func keyPEM(t testing.TB, k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func randToken(t testing.TB) string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}

// freePorts returns n distinct loopback TCP ports that were free a moment
// ago (all held open together, so they differ).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/podrouter/podrouter\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("repository root (go.mod of github.com/podrouter/podrouter) not found above the working directory")
		}
		dir = parent
	}
}

func tail(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// dial connects from inside the server's network namespace (the socket
// stays there once made), or from the caller's when there is none.
func (s *Server) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	if s.netns == "" {
		return d.DialContext(ctx, network, addr)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, err
	}
	defer orig.Close()
	target, err := netns.GetFromName(s.netns)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return nil, err
	}
	defer netns.Set(orig) //nolint:errcheck // back to where the thread was; locked thread is discarded on failure anyway
	return d.DialContext(ctx, network, addr)
}

// Kubeconfig writes a kubeconfig for the admin token to path.
func (s *Server) Kubeconfig(t testing.TB, path string) {
	t.Helper()
	s.WriteKubeconfig(t, path, s.Admin)
}
