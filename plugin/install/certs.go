package install

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/pki"
)

// Lifetimes of what install issues. A certificate closer than renewBefore
// to its end is issued again when install runs; the leads and agents
// reload theirs when the mounted files change, so re-running install is
// how certificates rotate.
const (
	caTTL       = 10 * 365 * 24 * time.Hour
	certTTL     = 365 * 24 * time.Hour
	renewBefore = 30 * 24 * time.Hour
)

// ErrNoCA is returned when the cluster that should hold the federation CA
// holds none.
var ErrNoCA = errors.New("no federation CA")

// loadCA reads the federation CA from its Secret.
func loadCA(ctx context.Context, kube kubernetes.Interface, ns string) (*pki.CA, error) {
	sec, err := kube.CoreV1().Secrets(ns).Get(ctx, CASecret, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, ErrNoCA
	}
	if err != nil {
		return nil, fmt.Errorf("read secret %s/%s: %w", ns, CASecret, err)
	}
	ca, err := pki.ParseCA(sec.Data["ca.crt"], sec.Data["ca.key"])
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s: %w", ns, CASecret, err)
	}
	return ca, nil
}

// createCA makes a new federation CA and stores it. Create, not apply: of
// two installs racing to be first, one gets AlreadyExists and both end up
// with the same CA.
func createCA(ctx context.Context, kube kubernetes.Interface, ns string) (*pki.CA, error) {
	ca, err := pki.NewCA("qonnect federation CA", caTTL)
	if err != nil {
		return nil, err
	}
	key, err := ca.KeyPEM()
	if err != nil {
		return nil, err
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: CASecret, Namespace: ns, Labels: labels("ca")},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"ca.crt": ca.CertPEM, "ca.key": key},
	}
	_, err = kube.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{FieldManager: fleet.FieldManager})
	if apierrors.IsAlreadyExists(err) {
		return loadCA(ctx, kube, ns)
	}
	if err != nil {
		return nil, fmt.Errorf("store the federation CA in secret %s/%s: %w", ns, CASecret, err)
	}
	return ca, nil
}

func labels(component string) map[string]string {
	return map[string]string{LabelPartOf: PartOf, LabelComponent: component}
}

// certSecret returns the Secret holding an identity issued by ca: the one
// already in the cluster when it still fits, so that running install again
// changes nothing, else a new certificate.
func certSecret(ctx context.Context, kube kubernetes.Interface, ns, name, component string, ca *pki.CA, req pki.Request, now time.Time) (*corev1.Secret, bool, error) {
	if kube != nil {
		cur, err := kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			if certFits(cur.Data, ca, req, now) == nil {
				return tlsSecret(ns, name, component, ca.CertPEM, cur.Data["tls.crt"], cur.Data["tls.key"]), false, nil
			}
		case !apierrors.IsNotFound(err):
			return nil, false, fmt.Errorf("read secret %s/%s: %w", ns, name, err)
		}
	}
	req.TTL = certTTL
	is, err := ca.Issue(req)
	if err != nil {
		return nil, false, err
	}
	return tlsSecret(ns, name, component, ca.CertPEM, is.CertPEM, is.KeyPEM), true, nil
}

func tlsSecret(ns, name, component string, caPEM, certPEM, keyPEM []byte) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels(component)},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"ca.crt": caPEM, corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
	}
}

// certFits says why the certificate in data will not do for req, or nil:
// it must come from ca, name the identity asked for, cover every host,
// match its key and not be near its end.
func certFits(data map[string][]byte, ca *pki.CA, req pki.Request, now time.Time) error {
	if !bytes.Equal(bytes.TrimSpace(data["ca.crt"]), bytes.TrimSpace(ca.CertPEM)) {
		return errors.New("another CA")
	}
	if _, err := tls.X509KeyPair(data[corev1.TLSCertKey], data[corev1.TLSPrivateKeyKey]); err != nil {
		return fmt.Errorf("key pair: %w", err)
	}
	b, _ := pem.Decode(data[corev1.TLSCertKey])
	if b == nil {
		return errors.New("no certificate")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return err
	}
	if id, err := pki.IdentityOf(cert); err != nil || id.Role != req.Role || id.Name != req.Name {
		return fmt.Errorf("identity %v, want %s/%s", id, req.Role, req.Name)
	}
	if cert.NotAfter.Sub(now) < renewBefore {
		return errors.New("expires soon")
	}
	for _, h := range req.Hosts {
		if !covers(cert, h) {
			return fmt.Errorf("does not cover %s", h)
		}
	}
	return nil
}

func covers(cert *x509.Certificate, host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		for _, x := range cert.IPAddresses {
			if x.Equal(ip) {
				return true
			}
		}
		return false
	}
	for _, n := range cert.DNSNames {
		if n == host {
			return true
		}
	}
	return false
}
