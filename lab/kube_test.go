package lab

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/podrouter/podrouter/config"
)

func TestKubernetesSpec(t *testing.T) {
	s := Spec{Name: "t1", Kubernetes: true, PodrouterBin: "/x/bin/podrouter"}.WithDefaults()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if s.ProxyMode != ProxyModeIPTables || s.KubeBinDir != "/x/bin" ||
		strings.Join(s.BackendCommand, " ") != "/x/bin/podrouter-lab backend" || len(s.PassCIDRs) != 0 {
		t.Errorf("defaults: %+v", s)
	}
	for what, bad := range map[string]Spec{
		"bird nodes":                {Name: "t1", Kubernetes: true, Speaker: SpeakerBIRD},
		"ipvs":                      {Name: "t1", Kubernetes: true, ProxyMode: "ipvs"},
		"proxy mode, no kubernetes": {Name: "t1", ProxyMode: ProxyModeNFTables},
		"own kubeconfig":            {Name: "t1", Kubernetes: true, Kubeconfig: "/k"},
		"pass cidr with host bits":  {Name: "t1", PassCIDRs: []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr("10.96.0.1"), 16)}},
		"pass cidr zero value":      {Name: "t1", PassCIDRs: []netip.Prefix{{}}},
	} {
		if err := bad.WithDefaults().Validate(); err == nil {
			t.Errorf("%s: accepted", what)
		}
	}
}

// The Kubernetes-mode node config parses: kubeconfig per node, no pod
// CIDRs (they come from the Node), no pass CIDRs (the Service CIDRs are
// learned from the cluster).
func TestKubernetesNodeConfig(t *testing.T) {
	s := Spec{Name: "t1", Kubernetes: true, Datapath: true, PodrouterBin: "/x/podrouter"}.WithDefaults()
	b, err := render(podrouterTmpl, s.nodeData(2))
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !c.Kubernetes.Enabled || c.Kubernetes.Kubeconfig != "/run/podrouter-lab/t1/node2/kube/podrouter.kubeconfig" || len(c.PodCIDRs) != 0 {
		t.Errorf("kubernetes: %+v pod CIDRs %v\n%s", c.Kubernetes, c.PodCIDRs, b)
	}
	if len(c.Datapath.PassCIDRs) != 0 || !*c.Kubernetes.ServiceCIDRs {
		t.Errorf("passCIDRs %s, serviceCIDRs %v\n%s", c.Datapath.PassCIDRs, *c.Kubernetes.ServiceCIDRs, b)
	}
}

func TestKubeProxyConfig(t *testing.T) {
	s := Spec{Name: "t1", Kubernetes: true, ProxyMode: ProxyModeNFTables}.WithDefaults()
	b, err := render(kubeProxyTmpl, s.kubeProxyData(3))
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	for path, want := range map[string]string{
		"kind": "KubeProxyConfiguration", "mode": "nftables", "hostnameOverride": "node3",
		"clusterCIDR": "10.0.0.0/16,fd00:10::/56", "metricsBindAddress": "127.0.0.1:10249", "healthzBindAddress": "127.0.0.1:10256",
		// nf_conntrack_max and the hash size are machine-wide: hands off.
		"conntrack.maxPerCore": "0", "conntrack.min": "0", "conntrack.tcpEstablishedTimeout": "0s", "conntrack.tcpCloseWaitTimeout": "0s",
		"clientConnection.kubeconfig": "/run/podrouter-lab/t1/node3/kube/kube-proxy.kubeconfig",
	} {
		var v any = c
		for _, k := range strings.Split(path, ".") {
			v = v.(map[string]any)[k]
		}
		if fmt.Sprint(v) != want {
			t.Errorf("%s = %v, want %s", path, v, want)
		}
	}
}

// TestPKI: the serving certificate verifies for every name and address
// the nodes and pods use, client certificates carry their identity, and
// a kubeconfig loads.
func TestPKI(t *testing.T) {
	dir := t.TempDir()
	p, err := newPKI(dir, "t1")
	if err != nil {
		t.Fatal(err)
	}
	srv, _, err := p.issue(pkiCert{name: "apiserver", cn: "kube-apiserver", server: true,
		ips: []net.IP{net.ParseIP("192.168.254.1"), net.ParseIP("fd00:1:1::1")}, dns: []string{"kubernetes.default.svc"}})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.caPEM)
	cert := parseCert(t, srv)
	for _, name := range []string{"192.168.254.1", "fd00:1:1::1", "kubernetes.default.svc"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("serving certificate for %s: %v", name, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "192.168.254.2"}); err == nil {
		t.Error("serving certificate verifies for an address it does not carry")
	}
	cl, key, err := p.issue(pkiCert{name: "kubelet-node1", cn: "system:node:node1", orgs: []string{"system:nodes"}})
	if err != nil {
		t.Fatal(err)
	}
	cc := parseCert(t, cl)
	if _, err := cc.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil ||
		cc.Subject.CommonName != "system:node:node1" || strings.Join(cc.Subject.Organization, ",") != "system:nodes" {
		t.Errorf("client certificate %v: %v", cc.Subject, err)
	}
	for _, f := range []string{"ca.crt", "ca.key", "sa.key", "sa.pub", "apiserver.crt", "apiserver.key", "kubelet-node1.key"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".key") && st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	kc := filepath.Join(dir, "x.kubeconfig")
	if err := writeKubeconfig(kc, apiServerURL("192.168.1.0"), p.caPEM, "system:node:node1", kubeconfigUser{certPEM: cl, keyPEM: key}); err != nil {
		t.Fatal(err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Host != "https://192.168.1.0:6443" || len(rc.CertData) == 0 || len(rc.KeyData) == 0 || len(rc.CAData) == 0 {
		t.Errorf("kubeconfig: host %s, cert %d, key %d, ca %d bytes", rc.Host, len(rc.CertData), len(rc.KeyData), len(rc.CAData))
	}
}

func parseCert(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
