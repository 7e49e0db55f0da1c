package plugin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"qonnect.io/qonnect/internal/pki"
)

// tlsLead is the fake lead behind mutual TLS, as a lead pod serves it.
type tlsLead struct {
	ca   *pki.CA
	lead *fakeLead
	srv  *httptest.Server
}

func newTLSLead(t *testing.T) *tlsLead {
	t.Helper()
	ca, err := pki.NewCA("qonnect-test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// The lead's certificate names its Service, not 127.0.0.1: the
	// plugin reaches it through a port-forward and must not need the name.
	is, err := ca.Issue(pki.Request{Role: pki.RoleLead, Name: "lead-1", Hosts: []string{"qonnect-lead.qonnect-system.svc"}})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(is.CertPEM, is.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	l := &tlsLead{ca: ca, lead: newFakeLead()}
	l.srv = httptest.NewUnstartedServer(l.lead)
	l.srv.TLS = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	l.srv.StartTLS()
	t.Cleanup(l.srv.Close)
	return l
}

// userSecret is the Secret an operator creates for a user.
func (l *tlsLead) userSecret(t *testing.T, name string) *corev1.Secret {
	t.Helper()
	is, err := l.ca.Issue(pki.Request{Role: pki.RoleUser, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: UserSecretPrefix + name, Namespace: DefaultLeadNamespace},
		Data:       map[string][]byte{"ca.crt": l.ca.CertPEM, "tls.crt": is.CertPEM, "tls.key": is.KeyPEM},
	}
}

func leadPod(name string, ready bool, port int32) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: DefaultLeadNamespace, Labels: map[string]string{"app.kubernetes.io/name": "qonnect-lead"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "lead", Ports: []corev1.ContainerPort{{Name: "api", ContainerPort: port}}}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
}

// fakeForwarder "forwards" every pod to one local address and records
// which pods and ports it was asked for.
type fakeForwarder struct {
	addr    string
	err     error
	asked   []string
	stopped int
}

func (f *fakeForwarder) Forward(_ context.Context, pod *corev1.Pod, port int) (string, func(), error) {
	f.asked = append(f.asked, pod.Name+":"+strconv.Itoa(port))
	if f.err != nil {
		return "", nil, f.err
	}
	return f.addr, func() { f.stopped++ }, nil
}

// whoami makes the fake API server answer SelfSubjectReviews with user.
func whoami(cs *fake.Clientset, user string) {
	cs.PrependReactor("create", "selfsubjectreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, &authv1.SelfSubjectReview{Status: authv1.SelfSubjectReviewStatus{UserInfo: authv1.UserInfo{Username: user}}}, nil
	})
}

func TestKubeConnector(t *testing.T) {
	l := newTLSLead(t)
	addr := strings.TrimPrefix(l.srv.URL, "https://")

	t.Run("secret named after the kube user", func(t *testing.T) {
		cs := fake.NewClientset(l.userSecret(t, "alice-example-com"), l.userSecret(t, "default"),
			leadPod("lead-0", true, 7443), leadPod("lead-1", false, 8443))
		whoami(cs, "Alice@Example.com")
		fw := &fakeForwarder{addr: addr}
		k := &KubeConnector{Client: cs, Forwarder: fw, Namespace: DefaultLeadNamespace, Timeout: 5 * time.Second}
		s, err := k.Connect(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		st, err := s.Client.RaftStatus(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Leader != "lead-1" {
			t.Errorf("status: %+v", st)
		}
		if want := "lead-0:7443,lead-1:8443"; strings.Join(fw.asked, ",") != want {
			t.Errorf("forwarded %v, want %s (ready pods first, the api port)", fw.asked, want)
		}
		if !strings.Contains(s.Via, "qonnect-user-alice-example-com") {
			t.Errorf("via %q does not name the user's secret", s.Via)
		}
		s.Close()
		if fw.stopped != 2 {
			t.Errorf("stopped %d forwards, want 2", fw.stopped)
		}
	})

	t.Run("falls back to the default secret", func(t *testing.T) {
		cs := fake.NewClientset(l.userSecret(t, "default"), leadPod("lead-0", true, 7443))
		whoami(cs, "system:serviceaccount:ci:bot")
		k := &KubeConnector{Client: cs, Forwarder: &fakeForwarder{addr: addr}, Namespace: DefaultLeadNamespace}
		s, err := k.Connect(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if !strings.Contains(s.Via, "qonnect-user-default") {
			t.Errorf("via %q", s.Via)
		}
		if _, err := s.Client.ListApps(context.Background()); err != nil {
			t.Fatal(err)
		}
	})

	errCases := []struct {
		name  string
		setup func(cs *fake.Clientset, fw *fakeForwarder, k *KubeConnector)
		objs  []runtime.Object
		want  string
	}{
		{
			name: "no secret",
			objs: []runtime.Object{leadPod("lead-0", true, 7443)},
			want: "no qonnect user certificate: none of the secrets qonnect-user-default exists in namespace qonnect-system",
		},
		{
			name: "explicit user without secret",
			objs: []runtime.Object{l.userSecret(t, "default"), leadPod("lead-0", true, 7443)},
			setup: func(_ *fake.Clientset, _ *fakeForwarder, k *KubeConnector) {
				k.User = "bob"
			},
			want: "none of the secrets qonnect-user-bob exists",
		},
		{
			name: "forbidden secret",
			objs: []runtime.Object{leadPod("lead-0", true, 7443)},
			setup: func(cs *fake.Clientset, _ *fakeForwarder, _ *KubeConnector) {
				cs.PrependReactor("get", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
					name := a.(k8stesting.GetAction).GetName()
					return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, name, errString(`User "bob" cannot get resource "secrets" in the namespace "qonnect-system"`))
				})
			},
			want: "forbidden: cannot read the qonnect user certificate (secret qonnect-system/qonnect-user-default)",
		},
		{
			name: "forbidden port-forward",
			objs: []runtime.Object{l.userSecret(t, "default"), leadPod("lead-0", true, 7443)},
			setup: func(_ *fake.Clientset, fw *fakeForwarder, _ *KubeConnector) {
				fw.err = errString(`error upgrading connection: pods "lead-0" is forbidden: User "bob" cannot create resource "pods/portforward" in API group "" in the namespace "qonnect-system"`)
			},
			want: "forbidden: port-forward to lead pod qonnect-system/lead-0: error upgrading connection",
		},
		{
			name: "no lead pod",
			objs: []runtime.Object{l.userSecret(t, "default")},
			want: "no running lead pod in namespace qonnect-system (label app.kubernetes.io/name=qonnect-lead)",
		},
		{
			name: "broken secret",
			objs: []runtime.Object{&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "qonnect-user-default", Namespace: DefaultLeadNamespace}, Data: map[string][]byte{"ca.crt": []byte("x")}}, leadPod("lead-0", true, 7443)},
			want: "secret qonnect-system/qonnect-user-default: needs keys ca.crt, tls.crt and tls.key",
		},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset(tc.objs...)
			fw := &fakeForwarder{addr: addr}
			k := &KubeConnector{Client: cs, Forwarder: fw, Namespace: DefaultLeadNamespace}
			if tc.setup != nil {
				tc.setup(cs, fw, k)
			}
			_, err := k.Connect(context.Background())
			if err == nil {
				t.Fatal("connected, want an error")
			}
			if msg := oneLine(err); !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not contain %q", msg, tc.want)
			}
		})
	}
}

// TestKubeConnectorChecksLeadCertificate: a server whose certificate is
// not from the federation's CA is refused, even though the host name is
// not checked.
func TestKubeConnectorChecksLeadCertificate(t *testing.T) {
	l := newTLSLead(t)
	other := newTLSLead(t) // another CA
	cs := fake.NewClientset(other.userSecret(t, "default"), leadPod("lead-0", true, 7443))
	k := &KubeConnector{Client: cs, Forwarder: &fakeForwarder{addr: strings.TrimPrefix(l.srv.URL, "https://")}, Namespace: DefaultLeadNamespace, Timeout: 5 * time.Second}
	s, err := k.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Client.RaftStatus(context.Background()); err == nil || !strings.Contains(err.Error(), "lead certificate") {
		t.Errorf("talked to a lead of another CA: %v", err)
	}
}

// TestVerifyLeadRole: a certificate of the right CA that is not a lead's
// (a user's, here) is refused.
func TestVerifyLeadRole(t *testing.T) {
	l := newTLSLead(t)
	is, err := l.ca.Issue(pki.Request{Role: pki.RoleUser, Name: "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(is.CertPEM, is.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(l.ca.Cert)
	if err := verifyLead(pool)(tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}); err == nil {
		t.Error("a user certificate passed as a lead's")
	}
}

func TestSanitizeUser(t *testing.T) {
	for in, want := range map[string]string{
		"alice":                        "alice",
		"Alice@Example.com":            "alice-example-com",
		"system:serviceaccount:ci:bot": "system-serviceaccount-ci-bot",
		"kubernetes-admin":             "kubernetes-admin",
		"--x--":                        "x",
		strings.Repeat("a", 80):        strings.Repeat("a", 50),
	} {
		if got := SanitizeUser(in); got != want {
			t.Errorf("SanitizeUser(%q) = %q, want %q", in, got, want)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }
