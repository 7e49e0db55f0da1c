package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Reloader serves a certificate from files and re-reads them when they
// change, so certificates rotate without a restart.
type Reloader struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	modTime time.Time
	checked time.Time
}

// NewReloader loads the key pair once, failing if it cannot.
func NewReloader(certFile, keyFile string) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile}
	if _, err := r.get(); err != nil {
		return nil, err
	}
	return r, nil
}

// reloadEvery bounds how often the files are looked at.
const reloadEvery = time.Second

func (r *Reloader) get() (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cert != nil && time.Since(r.checked) < reloadEvery {
		return r.cert, nil
	}
	r.checked = time.Now()
	st, err := os.Stat(r.certFile)
	if err != nil {
		if r.cert != nil {
			return r.cert, nil // keep serving the last good pair
		}
		return nil, fmt.Errorf("certificate: %w", err)
	}
	kst, err := os.Stat(r.keyFile)
	if err != nil {
		if r.cert != nil {
			return r.cert, nil
		}
		return nil, fmt.Errorf("key: %w", err)
	}
	mt := st.ModTime()
	if kst.ModTime().After(mt) {
		mt = kst.ModTime()
	}
	if r.cert != nil && !mt.After(r.modTime) {
		return r.cert, nil
	}
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		if r.cert != nil {
			return r.cert, nil // mid-rotation: the pair may not match yet
		}
		return nil, fmt.Errorf("load key pair %s: %w", r.certFile, err)
	}
	r.cert, r.modTime = &c, mt
	return r.cert, nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) { return r.get() }

// GetClientCertificate is for tls.Config.GetClientCertificate.
func (r *Reloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.get()
}

// LoadPool reads a CA bundle.
func LoadPool(caFile string) (*x509.CertPool, error) {
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("CA file %s holds no certificate", caFile)
	}
	return pool, nil
}

// ServerConfig is mutual TLS for a server: clients must present a
// certificate from the CA.
func ServerConfig(f Files) (*tls.Config, error) {
	pool, err := LoadPool(f.CA)
	if err != nil {
		return nil, err
	}
	r, err := NewReloader(f.Cert, f.Key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: r.GetCertificate,
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      pool,
	}, nil
}

// ClientConfig is mutual TLS for a client of a lead.
func ClientConfig(f Files) (*tls.Config, error) {
	pool, err := LoadPool(f.CA)
	if err != nil {
		return nil, err
	}
	r, err := NewReloader(f.Cert, f.Key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		RootCAs:              pool,
		GetClientCertificate: r.GetClientCertificate,
	}, nil
}

// PeerIdentity is the identity of the verified client certificate of a
// connection.
func PeerIdentity(cs *tls.ConnectionState) (Identity, error) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Identity{}, errors.New("no verified client certificate")
	}
	return IdentityOf(cs.VerifiedChains[0][0])
}
