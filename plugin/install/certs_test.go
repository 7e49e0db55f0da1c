package install

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"qonnect.io/qonnect/internal/pki"
)

// TestCertSecretReuse checks when install keeps a certificate (so a second
// run changes nothing) and when it issues a new one.
func TestCertSecretReuse(t *testing.T) {
	ctx := context.Background()
	ca, err := pki.NewCA("test", time.Hour*24*3650)
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA("other", time.Hour*24*3650)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	want := pki.Request{Role: pki.RoleLead, Name: "a", Hosts: []string{"10.0.0.1", "lead.example"}}
	issue := func(c *pki.CA, req pki.Request) *corev1.Secret {
		t.Helper()
		is, err := c.Issue(req)
		if err != nil {
			t.Fatal(err)
		}
		return tlsSecret("ns", "s", "lead", c.CertPEM, is.CertPEM, is.KeyPEM)
	}
	fresh := issue(ca, want)
	for _, tc := range []struct {
		name  string
		have  *corev1.Secret
		reuse bool
	}{
		{name: "none yet", have: nil},
		{name: "fits", have: fresh, reuse: true},
		{name: "another CA", have: issue(other, want)},
		{name: "another name", have: issue(ca, pki.Request{Role: pki.RoleLead, Name: "b", Hosts: want.Hosts})},
		{name: "another role", have: issue(ca, pki.Request{Role: pki.RoleAgent, Name: "a"})},
		{name: "a host missing", have: issue(ca, pki.Request{Role: pki.RoleLead, Name: "a", Hosts: []string{"10.0.0.1"}})},
		{name: "expires in a week", have: issue(ca, pki.Request{Role: pki.RoleLead, Name: "a", Hosts: want.Hosts, TTL: 7 * 24 * time.Hour})},
		{name: "key of another", have: func() *corev1.Secret {
			s := fresh.DeepCopy()
			s.Data[corev1.TLSPrivateKeyKey] = issue(ca, want).Data[corev1.TLSPrivateKeyKey]
			return s
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kube := fake.NewClientset()
			if tc.have != nil {
				if _, err := kube.CoreV1().Secrets("ns").Create(ctx, tc.have, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			got, issued, err := certSecret(ctx, kube, "ns", "s", "lead", ca, want, now)
			if err != nil {
				t.Fatal(err)
			}
			if issued == tc.reuse {
				t.Errorf("issued a new certificate: %v, want %v", issued, !tc.reuse)
			}
			if tc.reuse && string(got.Data[corev1.TLSCertKey]) != string(tc.have.Data[corev1.TLSCertKey]) {
				t.Error("kept Secret has another certificate")
			}
			if err := certFits(got.Data, ca, want, now); err != nil {
				t.Errorf("the Secret install writes does not fit: %v", err)
			}
		})
	}
}
