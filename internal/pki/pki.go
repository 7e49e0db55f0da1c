// Package pki is the federation's certificate authority and the identities
// it issues: a certificate per lead, one per agent whose name is its
// cluster, and user certificates. Every connection between qonnect parts is
// mutual TLS with these certificates; the role and name a peer presents come
// from its certificate, never from what it says in a request.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Role is what a certificate's holder is.
type Role string

// The roles. A certificate carries its role as its only Organization.
const (
	RoleLead  Role = "qonnect:lead"
	RoleAgent Role = "qonnect:agent"
	RoleUser  Role = "qonnect:user"
)

// ErrNoIdentity is returned for a certificate that carries no qonnect role.
var ErrNoIdentity = errors.New("certificate carries no qonnect identity")

// Identity is who a peer is: its role and name (lead ID, cluster name, user name).
type Identity struct {
	Role Role
	Name string
}

func (i Identity) String() string { return string(i.Role) + "/" + i.Name }

// IdentityOf reads the identity of a verified certificate.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, ErrNoIdentity
	}
	for _, o := range cert.Subject.Organization {
		switch Role(o) {
		case RoleLead, RoleAgent, RoleUser:
			if cert.Subject.CommonName == "" {
				return Identity{}, ErrNoIdentity
			}
			return Identity{Role: Role(o), Name: cert.Subject.CommonName}, nil
		}
	}
	return Identity{}, ErrNoIdentity
}

// CA is a certificate authority that can issue certificates.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
}

// NewCA creates a self-signed CA valid for ttl.
func NewCA(name string, ttl time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"qonnect"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(ttl),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// LoadCA reads a CA from its certificate and key PEM files.
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read CA key: %w", err)
	}
	return ParseCA(certPEM, keyPEM)
}

// ParseCA reads a CA from PEM.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil {
		return nil, errors.New("CA certificate: no PEM block")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, errors.New("CA key: no PEM block")
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	return &CA{Cert: cert, Key: key, CertPEM: certPEM}, nil
}

// KeyPEM returns the CA's private key as PEM.
func (ca *CA) KeyPEM() ([]byte, error) { return keyPEM(ca.Key) }

// Issued is a certificate and its key, as PEM.
type Issued struct {
	CertPEM []byte
	KeyPEM  []byte
}

// Request describes a certificate to issue.
type Request struct {
	Role Role
	Name string
	// Hosts are DNS names and IP addresses a server certificate answers for.
	Hosts []string
	TTL   time.Duration
	// NotBefore lets tests make certificates that are already expired.
	NotBefore time.Time
}

// Issue signs a certificate for req. Leads get server and client usage
// (they serve the API and dial each other); agents and users are clients.
func (ca *CA) Issue(req Request) (*Issued, error) {
	if req.Name == "" {
		return nil, errors.New("issue certificate: empty name")
	}
	switch req.Role {
	case RoleLead, RoleAgent, RoleUser:
	default:
		return nil, fmt.Errorf("issue certificate: unknown role %q", req.Role)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	nb := req.NotBefore
	if nb.IsZero() {
		nb = time.Now().Add(-time.Minute)
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = 365 * 24 * time.Hour
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: req.Name, Organization: []string{string(req.Role)}},
		NotBefore:    nb,
		NotAfter:     nb.Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if req.Role == RoleLead {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	for _, h := range req.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %s: %w", req.Name, err)
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, err
	}
	return &Issued{CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), KeyPEM: kp}, nil
}

// Files are the paths of one identity's TLS material.
type Files struct {
	CA   string `json:"ca"`
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// WriteFiles writes an issued certificate, its key (mode 0600) and the CA
// certificate into dir as NAME.crt, NAME.key and ca.crt.
func (ca *CA) WriteFiles(dir, name string, is *Issued) (Files, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Files{}, err
	}
	f := Files{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key")}
	if err := writeAtomic(f.CA, ca.CertPEM, 0o644); err != nil {
		return Files{}, err
	}
	if err := writeAtomic(f.Key, is.KeyPEM, 0o600); err != nil {
		return Files{}, err
	}
	if err := writeAtomic(f.Cert, is.CertPEM, 0o644); err != nil {
		return Files{}, err
	}
	return f, nil
}

// writeAtomic writes through a temporary file and a rename, so a process
// reloading the file never reads half of it.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func keyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n
}
