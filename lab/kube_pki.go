package lab

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// The lab's PKI, generated in-process at Up and laid out like kubeadm's
// (<statedir>/kube/pki): one CA signs the apiserver's serving certificate
// and a client certificate per identity; the service-account key pair
// signs tokens. Per-node kubelet client certificates (system:node:<name>,
// group system:nodes) are made now so that a kubelet can be added to a
// node without touching the control plane. ECDSA P-256, valid one year.

// pkiCert is one certificate to issue.
type pkiCert struct {
	name   string // file stem: <name>.crt, <name>.key
	cn     string
	orgs   []string
	server bool // serving certificate (else client)
	ips    []net.IP
	dns    []string
}

// pki is an open CA.
type pki struct {
	dir   string
	cert  *x509.Certificate
	key   *ecdsa.PrivateKey
	caPEM []byte
}

const pkiValidity = 365 * 24 * time.Hour

// newPKI creates a CA in dir (ca.crt, ca.key) and the service-account key
// pair (sa.key, sa.pub).
func newPKI(dir, name string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "podrouter-lab-" + name + "-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(pkiValidity),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("ca certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	p := &pki{dir: dir, cert: cert, key: key, caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
	if err := p.writePair("ca", p.caPEM, key); err != nil {
		return nil, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return nil, err
	}
	return p, p.writeKey("sa", saKey)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}

// issue signs c with the CA and writes <name>.crt and <name>.key; it
// returns both PEMs.
func (p *pki) issue(c pkiCert) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: c.cn, Organization: c.orgs},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(pkiValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		IPAddresses: c.ips, DNSNames: c.dns,
	}
	if c.server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate %s: %w", c.name, err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := p.writePair(c.name, certPEM, key); err != nil {
		return nil, nil, err
	}
	keyPEM, err = os.ReadFile(filepath.Join(p.dir, c.name+".key"))
	return certPEM, keyPEM, err
}

func (p *pki) writePair(name string, certPEM []byte, key *ecdsa.PrivateKey) error {
	if err := os.WriteFile(filepath.Join(p.dir, name+".crt"), certPEM, 0o644); err != nil {
		return err
	}
	return p.writeKey(name, key)
}

func (p *pki) writeKey(name string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(p.dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

// path is the file of a PKI object ("ca.crt", "sa.key").
func (p *pki) path(file string) string { return filepath.Join(p.dir, file) }

// kubeconfigUser is a kubeconfig's credentials: a client certificate or a
// bearer token.
type kubeconfigUser struct {
	certPEM, keyPEM []byte
	token           string
}

// writeKubeconfig writes a self-contained kubeconfig (CA, credentials
// embedded) for server to path.
func writeKubeconfig(path, server string, caPEM []byte, user string, cred kubeconfigUser) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["lab"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: cred.certPEM, ClientKeyData: cred.keyPEM, Token: cred.token}
	cfg.Contexts["lab"] = &clientcmdapi.Context{Cluster: "lab", AuthInfo: user}
	cfg.CurrentContext = "lab"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return os.Chmod(path, 0o600)
}

// apiServerURL is https://ip:6443.
func apiServerURL(ip string) string {
	return "https://" + net.JoinHostPort(ip, fmt.Sprint(APIServerPort))
}
