package plugin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/go-logr/logr"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/klog/v2"

	"qonnect.io/qonnect/internal/leadclient"
	"qonnect.io/qonnect/internal/pki"
)

// Where the leads live in a cluster and how they are found.
const (
	DefaultLeadNamespace = "qonnect-system"
	LeadSelector         = "app.kubernetes.io/name=qonnect-lead"
	// DefaultLeadPort is the lead's API port when its pod names none "api".
	DefaultLeadPort = 7443
	// UserSecretPrefix + NAME is the Secret holding a user's certificate,
	// with keys ca.crt, tls.crt and tls.key.
	UserSecretPrefix = "qonnect-user-"
	// DefaultUser is tried when the Secret named after the kube identity
	// does not exist: an operator who does not hand out per-person
	// certificates creates only qonnect-user-default.
	DefaultUser = "default"
	// maxForwards bounds how many lead pods one session forwards to.
	maxForwards = 5
)

// Forwarder opens a local address forwarded to a port of a pod.
type Forwarder interface {
	// Forward returns "127.0.0.1:PORT" and a function that stops forwarding.
	Forward(ctx context.Context, pod *corev1.Pod, port int) (addr string, stop func(), err error)
}

// KubeConnector reaches the leads through the current kube context: it
// reads the user's certificate from a Secret, forwards a local port to each
// ready lead pod and speaks mutual TLS over them. So the kubeconfig and RBAC
// decide who may use qonnect (get on the Secret, create on pods/portforward),
// and the lead still sees an authenticated client certificate — which the
// API server's service proxy could not carry.
type KubeConnector struct {
	Client    kubernetes.Interface
	Forwarder Forwarder
	Namespace string
	// User names the Secret qonnect-user-USER; empty means the kube
	// identity's name (from a SelfSubjectReview), then "default".
	User    string
	Timeout time.Duration
}

// Connect finds the certificate and the lead pods and forwards to them.
func (k *KubeConnector) Connect(ctx context.Context) (*Session, error) {
	secretName, cfg, err := k.userTLS(ctx)
	if err != nil {
		return nil, err
	}
	pods, err := k.leadPods(ctx)
	if err != nil {
		return nil, err
	}
	var addrs, names []string
	var stops []func()
	var errs []error
	for _, p := range pods {
		addr, stop, err := k.Forwarder.Forward(ctx, p, leadPort(p))
		if err != nil {
			if isForbidden(err) {
				stopAll(stops)
				return nil, fmt.Errorf("forbidden: port-forward to lead pod %s/%s: %s", p.Namespace, p.Name, oneLine(err))
			}
			errs = append(errs, fmt.Errorf("pod %s: %w", p.Name, err))
			continue
		}
		addrs, names, stops = append(addrs, addr), append(names, p.Name), append(stops, stop)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("port-forward to the lead pods in %s: %w", k.Namespace, errors.Join(errs...))
	}
	c, err := leadclient.New(leadclient.Config{Addresses: addrs, TLS: cfg, Timeout: k.Timeout, ConsistentReads: true})
	if err != nil {
		stopAll(stops)
		return nil, err
	}
	via := fmt.Sprintf("port-forward to %s/%s as %s", k.Namespace, strings.Join(names, ","), secretName)
	return NewSession(c, via, func() { stopAll(stops) }), nil
}

func stopAll(stops []func()) {
	for _, s := range stops {
		s()
	}
}

// userTLS reads the user's certificate Secret and builds mutual TLS from it.
func (k *KubeConnector) userTLS(ctx context.Context) (string, *tls.Config, error) {
	var names []string
	if k.User != "" {
		names = []string{UserSecretPrefix + k.User}
	} else {
		if u := k.kubeUser(ctx); u != "" && u != DefaultUser {
			names = append(names, UserSecretPrefix+u)
		}
		names = append(names, UserSecretPrefix+DefaultUser)
	}
	for _, name := range names {
		sec, err := k.Client.CoreV1().Secrets(k.Namespace).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			continue
		case apierrors.IsForbidden(err):
			return "", nil, fmt.Errorf("forbidden: cannot read the qonnect user certificate (secret %s/%s): %s", k.Namespace, name, oneLine(err))
		case err != nil:
			return "", nil, fmt.Errorf("read secret %s/%s: %w", k.Namespace, name, err)
		}
		cfg, err := leadTLS(sec.Data["ca.crt"], sec.Data["tls.crt"], sec.Data["tls.key"])
		if err != nil {
			return "", nil, fmt.Errorf("secret %s/%s: %w", k.Namespace, name, err)
		}
		return name, cfg, nil
	}
	return "", nil, fmt.Errorf("no qonnect user certificate: none of the secrets %s exists in namespace %s (ask the operator, or use --lead-user)", strings.Join(names, ", "), k.Namespace)
}

// kubeUser is the caller's kube user name as a DNS label, or "" when the
// API server will not say.
func (k *KubeConnector) kubeUser(ctx context.Context) string {
	r, err := k.Client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil || r == nil {
		return ""
	}
	return SanitizeUser(r.Status.UserInfo.Username)
}

var nonLabel = regexp.MustCompile(`[^a-z0-9-]+`)

// SanitizeUser turns a kube user name ("system:serviceaccount:ci:deployer",
// "Alice@example.com") into the DNS label its Secret is named with.
func SanitizeUser(u string) string {
	s := nonLabel.ReplaceAllString(strings.ToLower(u), "-")
	s = strings.Trim(s, "-")
	if max := 63 - len(UserSecretPrefix); len(s) > max {
		s = strings.TrimRight(s[:max], "-")
	}
	return s
}

// leadPods lists the lead pods that can take a port-forward, ready ones first.
func (k *KubeConnector) leadPods(ctx context.Context) ([]*corev1.Pod, error) {
	list, err := k.Client.CoreV1().Pods(k.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LeadSelector})
	if apierrors.IsForbidden(err) {
		return nil, fmt.Errorf("forbidden: cannot list the lead pods in %s: %s", k.Namespace, oneLine(err))
	}
	if err != nil {
		return nil, fmt.Errorf("list lead pods in %s: %w", k.Namespace, err)
	}
	var ready, running []*corev1.Pod
	for i := range list.Items {
		p := &list.Items[i]
		if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		if podReady(p) {
			ready = append(ready, p)
		} else {
			running = append(running, p)
		}
	}
	pods := append(ready, running...)
	if len(pods) == 0 {
		return nil, fmt.Errorf("no running lead pod in namespace %s (label %s)", k.Namespace, LeadSelector)
	}
	if len(pods) > maxForwards {
		pods = pods[:maxForwards]
	}
	return pods, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// leadPort is the pod's container port named "api" (or "https"), else the default.
func leadPort(p *corev1.Pod) int {
	for _, want := range []string{"api", "https"} {
		for _, c := range p.Spec.Containers {
			for _, port := range c.Ports {
				if port.Name == want {
					return int(port.ContainerPort)
				}
			}
		}
	}
	return DefaultLeadPort
}

// leadTLS is mutual TLS from PEM data. The leads are reached through
// 127.0.0.1, so the names in their certificates cannot match the address
// dialled; instead of a host name, the check is that the federation's CA
// issued the certificate to a lead (role qonnect:lead), which is what
// matters to a client.
func leadTLS(caPEM, certPEM, keyPEM []byte) (*tls.Config, error) {
	if len(caPEM) == 0 || len(certPEM) == 0 || len(keyPEM) == 0 {
		return nil, errors.New("needs keys ca.crt, tls.crt and tls.key")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("ca.crt holds no certificate")
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls.crt/tls.key: %w", err)
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection, without the host name (see above)
		VerifyConnection:   verifyLead(pool),
	}, nil
}

func verifyLead(roots *x509.CertPool) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("lead presented no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		leaf := cs.PeerCertificates[0]
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return fmt.Errorf("lead certificate: %w", err)
		}
		id, err := pki.IdentityOf(leaf)
		if err != nil {
			return fmt.Errorf("lead certificate: %w", err)
		}
		if id.Role != pki.RoleLead {
			return fmt.Errorf("peer %s is not a lead", id)
		}
		return nil
	}
}

func isForbidden(err error) bool {
	if apierrors.IsForbidden(err) {
		return true
	}
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "forbidden") || strings.Contains(s, "403")
}

// SPDYForwarder forwards with client-go's port-forward over SPDY, as
// `kubectl port-forward` does.
type SPDYForwarder struct {
	Config *rest.Config
	Client kubernetes.Interface
	// Logger receives the port-forward's own errors, which client-go would
	// otherwise print on stderr (and so over the TUI).
	Logger logr.Logger
}

// Forward starts forwarding a free local port to the pod's port.
func (f *SPDYForwarder) Forward(ctx context.Context, pod *corev1.Pod, port int) (string, func(), error) {
	transport, upgrader, err := spdy.RoundTripperFor(f.Config)
	if err != nil {
		return "", nil, fmt.Errorf("port-forward transport: %w", err)
	}
	u := f.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace(pod.Namespace).Name(pod.Name).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	// The forward outlives the call that opened it (the session keeps
	// it), so it is stopped by its own cancel, not by ctx.
	fctx, cancel := context.WithCancel(klog.NewContext(context.WithoutCancel(ctx), f.Logger))
	ready := make(chan struct{})
	pf, err := portforward.NewOnAddressesWithContext(fctx, dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)}, ready, io.Discard, io.Discard)
	if err != nil {
		cancel()
		return "", nil, fmt.Errorf("port-forward: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- pf.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		if err == nil {
			err = errors.New("port-forward ended before it was ready")
		}
		return "", nil, err
	case <-ctx.Done():
		cancel()
		return "", nil, ctx.Err()
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) == 0 {
		cancel()
		return "", nil, fmt.Errorf("port-forward: no local port: %w", err)
	}
	return fmt.Sprintf("127.0.0.1:%d", ports[0].Local), cancel, nil
}
