package install

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"qonnect.io/qonnect/internal/pki"
	"qonnect.io/qonnect/internal/sandbox"
	"qonnect.io/qonnect/internal/sandbox/sandboxtest"
)

// cluster is one sandbox cluster as the tests use it.
type cluster struct {
	name string
	cfg  *rest.Config
	kube kubernetes.Interface
	dyn  dynamic.Interface
}

// fixture is a two-cluster sandbox (cloud-a hosts the lead, edge-a is a
// member) and one kubeconfig with both contexts, as a person would have.
type fixture struct {
	t          *testing.T
	f          *sandbox.Federation
	kubeconfig string
	clusters   map[string]*cluster
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	p, err := sandbox.LoadProfile("../../internal/sandbox/testdata/two.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f := sandboxtest.Start(t, p)
	fx := &fixture{t: t, f: f, clusters: map[string]*cluster{}}
	merged := clientcmdapi.NewConfig()
	for _, name := range f.ClusterNames() {
		kc, err := clientcmd.LoadFromFile(f.Kubeconfig(name))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range kc.Clusters {
			merged.Clusters[k] = v
		}
		for k, v := range kc.AuthInfos {
			merged.AuthInfos[k] = v
		}
		for k, v := range kc.Contexts {
			merged.Contexts[k] = v
		}
		cfg, err := f.RESTConfig(name)
		if err != nil {
			t.Fatal(err)
		}
		c := &cluster{name: name, cfg: cfg, kube: kubernetes.NewForConfigOrDie(cfg), dyn: dynamic.NewForConfigOrDie(cfg)}
		fx.clusters[name] = c
	}
	merged.CurrentContext = "edge-a"
	fx.kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*merged, fx.kubeconfig); err != nil {
		t.Fatal(err)
	}
	return fx
}

// run runs `kubectl qonnect install|uninstall ARGS` in-process against the
// fixture's kubeconfig.
func (fx *fixture) run(args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	streams := genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	var cmd = NewCmdInstall(streams)
	if args[0] == "uninstall" {
		cmd, args = NewCmdUninstall(streams), args[1:]
	}
	cmd.SetArgs(append(args, "--kubeconfig", fx.kubeconfig))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err = cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func (fx *fixture) mustRun(args ...string) (stdout, stderr string) {
	fx.t.Helper()
	out, errOut, err := fx.run(args...)
	if err != nil {
		fx.t.Fatalf("kubectl qonnect %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out, errOut
}

// kubectl runs the real kubectl against the fixture's kubeconfig.
func (fx *fixture) kubectl(stdin string, args ...string) (string, error) {
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", fx.kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// installed are the types install writes, to snapshot what it made.
var installed = []struct {
	gvr        schema.GroupVersionResource
	namespaced bool
}{
	{schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}, false},
	{schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}, true},
	{schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, true},
	{schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, true},
	{schema.GroupVersionResource{Version: "v1", Resource: "services"}, true},
	{schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}, true},
	{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, true},
	{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"}, true},
	{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"}, true},
	{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}, false},
	{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"}, false},
	{schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicies"}, false},
	{schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicybindings"}, false},
}

// stored is what the idempotence checks look at in an object: its
// resourceVersion, and when the field manager "qonnect" last changed it
// (controllers write status and annotations too; only install's own
// writes count).
type stored struct {
	rv      string
	applied time.Time
}

// snapshot maps every object install made in c to what was stored.
func (c *cluster) snapshot(t *testing.T) map[string]stored {
	t.Helper()
	ctx := context.Background()
	out := map[string]stored{}
	for _, r := range installed {
		var ri dynamic.ResourceInterface = c.dyn.Resource(r.gvr)
		if r.namespaced {
			ri = c.dyn.Resource(r.gvr).Namespace(DefaultNamespace)
		}
		l, err := ri.List(ctx, metav1.ListOptions{LabelSelector: LabelPartOf + "=" + PartOf})
		if err != nil {
			t.Fatalf("list %s: %v", r.gvr.Resource, err)
		}
		for _, o := range l.Items {
			st := stored{rv: o.GetResourceVersion()}
			for _, m := range o.GetManagedFields() {
				if m.Manager == "qonnect" && m.Time != nil && m.Time.After(st.applied) {
					st.applied = m.Time.Time
				}
			}
			out[r.gvr.Resource+"/"+o.GetName()] = st
		}
	}
	return out
}

// nextSecond waits for the next wall-clock second: managedFields times
// have one-second resolution, and an install after this cannot write
// without leaving a later time.
func nextSecond() time.Time {
	next := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(next))
	return next
}

func (c *cluster) secret(t *testing.T, name string) *corev1.Secret {
	t.Helper()
	s, err := c.kube.CoreV1().Secrets(DefaultNamespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("%s: secret %s: %v", c.name, name, err)
	}
	return s
}

// checkIdentity verifies that the Secret holds a certificate from ca for
// the identity, with its key and the CA.
func checkIdentity(t *testing.T, s *corev1.Secret, ca *pki.CA, role pki.Role, name string) *x509.Certificate {
	t.Helper()
	if !bytes.Equal(s.Data["ca.crt"], ca.CertPEM) {
		t.Errorf("secret %s: ca.crt is not the federation CA", s.Name)
	}
	if err := certFits(s.Data, ca, pki.Request{Role: role, Name: name}, time.Now()); err != nil {
		t.Errorf("secret %s: %v", s.Name, err)
	}
	b, _ := pem.Decode(s.Data[corev1.TLSCertKey])
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func allLines(t *testing.T, out, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		if !strings.HasSuffix(l, " "+want) {
			t.Errorf("line %q: want every object %s\n%s", l, want, out)
			return
		}
	}
}

// unchangedSince checks that what changed between the snapshots was not
// written by install (the field manager "qonnect") since since.
func unchangedSince(t *testing.T, what string, since time.Time, before, after map[string]stored) {
	t.Helper()
	for k, b := range before {
		a, ok := after[k]
		switch {
		case !ok:
			t.Errorf("%s deleted %s", what, k)
		case a.rv != b.rv && !a.applied.Before(since):
			t.Errorf("%s wrote %s (resourceVersion %s -> %s, applied at %s)", what, k, b.rv, a.rv, a.applied.Format(time.RFC3339))
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s created %s", what, k)
		}
	}
}

// TestInstallSandbox installs a lead and two agents into real API servers
// with the plugin's commands, then checks what they made, that running
// them again changes nothing, that the agent's RBAC and its admission
// policy allow what the agent does and no more, that a real lead and a
// real agent run with exactly what install made, and that uninstall
// removes it.
func TestInstallSandbox(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: starts two Kubernetes control planes")
	}
	fx := newFixture(t)
	cloud, edge := fx.clusters["cloud-a"], fx.clusters["edge-a"]
	ctx := context.Background()

	t.Run("refusals write nothing", func(t *testing.T) {
		_, _, err := fx.run("agent", "--context", "edge-a", "--ca-context", "cloud-a", "--cluster", "edge-a", "--tier", "edge", "--leads", "127.0.0.1:7443")
		if err == nil || !strings.Contains(err.Error(), "no federation CA in secret qonnect-system/qonnect-ca of context cloud-a") {
			t.Errorf("agent before any lead: %v", err)
		}
		_, _, err = fx.run("lead", "--context", "cloud-a", "--id", "cloud-b", "--peers", "cloud-a=a:7000=a:7443,cloud-b=b:7000=b:7443")
		if err == nil || !strings.Contains(err.Error(), "lead cloud-b is not the first of --peers: install cloud-a first") {
			t.Errorf("second lead first: %v", err)
		}
		_, _, err = fx.run("lead", "--context", "cloud-a", "--id", "cloud-a", "--dry-run=server")
		if err == nil || !strings.Contains(err.Error(), "needs the namespace qonnect-system, which does not exist yet") {
			t.Errorf("server dry run of a first install: %v", err)
		}
		for _, c := range fx.clusters {
			if s := c.snapshot(t); len(s) > 0 {
				t.Errorf("%s: refused installs left %v", c.name, s)
			}
		}
	})

	// A volume for the lead's claim (the sandbox has no provisioner), so its
	// pod schedules and --wait sees the Deployment available: which also
	// proves the pod passes the namespace's restricted Pod Security.
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "lead-data"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/lib/qonnect-test"}},
		},
	}
	if _, err := cloud.kube.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var ca *pki.CA
	t.Run("lead", func(t *testing.T) {
		out, errOut := fx.mustRun("lead", "--context", "cloud-a", "--id", "cloud-a", "--users", "default,alice", "--host", "lead.example.org", "--wait", "--timeout", "2m")
		for _, want := range []string{
			"namespace/qonnect-system created", "deployment.apps/qonnect-lead created", "service/qonnect-lead created",
			"persistentvolumeclaim/qonnect-lead-data created", "secret/qonnect-lead-tls created", "secret/qonnect-user-alice created",
			"role.rbac.authorization.k8s.io/qonnect-user created",
		} {
			if !strings.Contains(out, want+"\n") {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if !strings.Contains(errOut, "note: created the federation CA in secret qonnect-system/qonnect-ca of context cloud-a") {
			t.Errorf("no note about the new CA:\n%s", errOut)
		}
		s := cloud.secret(t, CASecret)
		var err error
		if ca, err = pki.ParseCA(s.Data["ca.crt"], s.Data["ca.key"]); err != nil {
			t.Fatal(err)
		}
		lead := checkIdentity(t, cloud.secret(t, LeadTLSSecret), ca, pki.RoleLead, "cloud-a")
		for _, h := range []string{"qonnect-lead.qonnect-system.svc", "lead.example.org", "localhost"} {
			if lead.VerifyHostname(h) != nil {
				t.Errorf("lead certificate does not answer for %s (%v)", h, lead.DNSNames)
			}
		}
		checkIdentity(t, cloud.secret(t, "qonnect-user-default"), ca, pki.RoleUser, "default")
		checkIdentity(t, cloud.secret(t, "qonnect-user-alice"), ca, pki.RoleUser, "alice")

		// Key material never reaches the output, whatever the format.
		for _, format := range []string{"yaml", "json"} {
			out, errOut := fx.mustRun("lead", "--context", "cloud-a", "--id", "cloud-a", "--users", "default,alice", "--host", "lead.example.org", "-o", format)
			for _, secret := range []string{"PRIVATE KEY", "LS0tLS1CRUdJTi", "tls.key:", `"tls.key"`, "ca.key"} {
				if strings.Contains(out+errOut, secret) {
					t.Errorf("-o %s output holds %q", format, secret)
				}
			}
		}

		before, since := cloud.snapshot(t), nextSecond()
		out, _ = fx.mustRun("lead", "--context", "cloud-a", "--id", "cloud-a", "--users", "default,alice", "--host", "lead.example.org")
		allLines(t, out, Unchanged)
		unchangedSince(t, "a second install lead", since, before, cloud.snapshot(t))

		out, _ = fx.mustRun("lead", "--context", "cloud-a", "--id", "cloud-a", "--users", "default,alice", "--host", "lead.example.org", "--service-type", "NodePort", "--dry-run=server")
		if !strings.Contains(out, "service/qonnect-lead configured (server dry run)\n") {
			t.Errorf("server dry run of a new service type:\n%s", out)
		}
		unchangedSince(t, "a server dry run", since, before, cloud.snapshot(t))
	})
	if ca == nil {
		t.Fatal("no lead, nothing more to check")
	}

	t.Run("agents", func(t *testing.T) {
		fx.mustRun("agent", "--context", "cloud-a", "--cluster", "cloud-a", "--tier", "cloud", "--role", "lead", "--leads", "qonnect-lead.qonnect-system.svc:7443")
		args := []string{"agent", "--context", "edge-a", "--ca-context", "cloud-a", "--cluster", "edge-a", "--tier", "edge", "--leads", "lead.example.org:7443"}
		out, _ := fx.mustRun(append(args, "--wait", "--timeout", "2m")...)
		for _, want := range []string{"validatingadmissionpolicy.admissionregistration.k8s.io/qonnect-agent-namespaces created", "clusterrole.rbac.authorization.k8s.io/qonnect-agent created", "secret/qonnect-agent-tls created"} {
			if !strings.Contains(out, want+"\n") {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		checkIdentity(t, cloud.secret(t, AgentTLSSecret), ca, pki.RoleAgent, "cloud-a")
		checkIdentity(t, edge.secret(t, AgentTLSSecret), ca, pki.RoleAgent, "edge-a")
		if _, err := edge.kube.CoreV1().Secrets(DefaultNamespace).Get(ctx, CASecret, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("the CA reached a member cluster: %v", err)
		}

		before, since := edge.snapshot(t), nextSecond()
		out, _ = fx.mustRun(args...)
		allLines(t, out, Unchanged)
		unchangedSince(t, "a second install agent", since, before, edge.snapshot(t))

		// Another setting: a new generated ConfigMap, the Deployment
		// follows it, and the old one goes.
		out, _ = fx.mustRun(append(args, "--endpoint", "edge-a.example.org")...)
		var oldCM string
		for k := range before {
			if strings.HasPrefix(k, "configmaps/"+AgentConfigMap) {
				oldCM = strings.TrimPrefix(k, "configmaps/")
			}
		}
		for _, want := range []string{"deployment.apps/qonnect-agent configured", "configmap/" + oldCM + " deleted"} {
			if !strings.Contains(out, want+"\n") {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		before, since = edge.snapshot(t), nextSecond()
		out, _ = fx.mustRun(append(args, "--endpoint", "edge-a.example.org")...)
		allLines(t, out, Unchanged)
		unchangedSince(t, "a third install agent", since, before, edge.snapshot(t))
	})

	t.Run("bases apply with kubectl", func(t *testing.T) {
		// What a person applying the bases with kubectl's own kustomize gets
		// must be valid too: the server checks it, nothing is stored.
		for _, base := range []string{"namespace", "lead", "agent", "agent-guard"} {
			out, err := fx.kubectl("", "--context", "cloud-a", "apply", "--server-side", "--dry-run=server", "--field-manager", "qonnect", "--force-conflicts", "-k", "../../manifests/"+base)
			if err != nil {
				t.Errorf("kubectl apply -k manifests/%s: %v\n%s", base, err, out)
			}
		}
	})

	t.Run("agent RBAC", func(t *testing.T) { checkAgentRBAC(t, fx) })
	t.Run("agent guard", func(t *testing.T) { checkGuard(t, edge) })
	t.Run("user role", func(t *testing.T) { checkUserRole(t, fx, cloud) })
	t.Run("lead and agent run with what install made", func(t *testing.T) { runInstalled(t, fx, cloud, edge) })

	t.Run("uninstall", func(t *testing.T) {
		out, errOut := fx.mustRun("uninstall", "--context", "edge-a")
		for _, want := range []string{"deployment.apps/qonnect-agent deleted", "secret/qonnect-agent-tls deleted",
			"validatingadmissionpolicy.admissionregistration.k8s.io/qonnect-agent-namespaces deleted",
			"namespace/qonnect-system kept (the namespace; --purge deletes it)"} {
			if !strings.Contains(out, want+"\n") {
				t.Errorf("uninstall output lacks %q:\n%s\n%s", want, out, errOut)
			}
		}
		left := edge.snapshot(t)
		delete(left, "namespaces/"+DefaultNamespace)
		if len(left) > 0 {
			t.Errorf("uninstall left %v", left)
		}

		out, _ = fx.mustRun("uninstall", "--context", "cloud-a")
		for _, want := range []string{"secret/qonnect-ca kept", "persistentvolumeclaim/qonnect-lead-data kept", "secret/qonnect-user-alice deleted"} {
			if !strings.Contains(out, want+" ") && !strings.Contains(out, want+"\n") {
				t.Errorf("uninstall output lacks %q:\n%s", want, out)
			}
		}
		fx.mustRun("uninstall", "--context", "cloud-a", "--purge")
		if left := cloud.snapshot(t); len(left) > 0 {
			// The namespace may still be terminating; nothing else may be.
			for k := range left {
				if k != "namespaces/"+DefaultNamespace {
					t.Errorf("uninstall --purge left %s", k)
				}
			}
		}
		ns, err := cloud.kube.CoreV1().Namespaces().Get(ctx, DefaultNamespace, metav1.GetOptions{})
		if err == nil && ns.DeletionTimestamp == nil {
			t.Error("uninstall --purge kept the namespace")
		}
	})
}

// canI asks kubectl auth can-i as subject, in namespace ns ("" for
// cluster-wide, "*" for every namespace).
func canI(t *testing.T, fx *fixture, context, subject, verb, resource, ns string) bool {
	t.Helper()
	// RESOURCE/NAME, or RESOURCE/SUBRESOURCE for these.
	if r, sub, ok := strings.Cut(resource, "/"); ok && slices.Contains([]string{"exec", "portforward", "token", "log"}, sub) {
		resource = r + " --subresource=" + sub
	}
	args := append([]string{"--context", context, "auth", "can-i", verb}, strings.Fields(resource)...)
	args = append(args, "--as", subject)
	switch ns {
	case "":
	case "*":
		args = append(args, "--all-namespaces")
	default:
		args = append(args, "-n", ns)
	}
	out, err := fx.kubectl("", args...)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true
	case errors.As(err, &ee) && ee.ExitCode() == 1 && strings.HasSuffix(strings.TrimSpace(out), "no"):
		return false
	}
	t.Fatalf("kubectl auth can-i %s %s: %v\n%s", verb, resource, err, out)
	return false
}

const agentSA = "system:serviceaccount:qonnect-system:qonnect-agent"

// checkAgentRBAC holds the agent's ServiceAccount to what the agent does
// (agent/): informers on nodes, pods and workloads; server-side apply,
// list and delete of a component's kinds; namespaces created, never
// deleted; Events; its own Lease — and nothing beyond.
func checkAgentRBAC(t *testing.T, fx *fixture) {
	for _, tc := range []struct {
		verb, resource, ns string
		want               bool
	}{
		{"list", "nodes", "", true},
		{"watch", "nodes", "", true},
		{"list", "pods", "*", true},
		{"watch", "pods", "*", true},
		{"list", "deployments.apps", "*", true},
		{"watch", "replicasets.apps", "*", true},
		{"watch", "statefulsets.apps", "*", true},
		{"watch", "daemonsets.apps", "*", true},
		{"watch", "jobs.batch", "*", true},
		{"get", "namespaces", "", true},
		{"create", "namespaces", "", true},
		{"patch", "namespaces", "", true},
		{"create", "events", "shop", true},
		{"patch", "events", "default", true},
		{"patch", "deployments.apps", "shop", true},
		{"create", "deployments.apps", "shop", true},
		{"delete", "deployments.apps", "shop", true},
		{"patch", "services", "shop", true},
		{"patch", "configmaps", "shop", true},
		{"list", "configmaps", "*", true},
		{"patch", "ingresses.networking.k8s.io", "shop", true},
		{"patch", "horizontalpodautoscalers.autoscaling", "shop", true},
		{"create", "leases.coordination.k8s.io", "qonnect-system", true},
		{"update", "leases.coordination.k8s.io/qonnect-agent", "qonnect-system", true},
		{"get", "leases.coordination.k8s.io/qonnect-agent", "qonnect-system", true},

		{"get", "secrets", "qonnect-system", false},
		{"list", "secrets", "*", false},
		{"patch", "secrets", "shop", false},
		{"delete", "namespaces", "", false},
		{"update", "namespaces", "", false},
		{"create", "pods", "shop", false},
		{"create", "pods/exec", "shop", false},
		{"create", "pods/portforward", "qonnect-system", false},
		{"delete", "pods", "shop", false},
		{"patch", "nodes", "", false},
		{"delete", "nodes", "", false},
		{"patch", "replicasets.apps", "shop", false},
		{"create", "clusterroles.rbac.authorization.k8s.io", "", false},
		{"create", "rolebindings.rbac.authorization.k8s.io", "shop", false},
		{"bind", "clusterroles.rbac.authorization.k8s.io", "", false},
		{"escalate", "roles.rbac.authorization.k8s.io", "shop", false},
		{"impersonate", "serviceaccounts", "kube-system", false},
		{"create", "serviceaccounts/token", "kube-system", false},
		{"create", "customresourcedefinitions.apiextensions.k8s.io", "", false},
		{"delete", "validatingadmissionpolicybindings.admissionregistration.k8s.io", "", false},
		{"update", "leases.coordination.k8s.io/kube-scheduler", "kube-system", false},
		{"update", "leases.coordination.k8s.io/someone-else", "qonnect-system", false},
		{"get", "leases.coordination.k8s.io", "kube-system", false},
	} {
		if got := canI(t, fx, "edge-a", agentSA, tc.verb, tc.resource, tc.ns); got != tc.want {
			t.Errorf("agent can %s %s in %q: %v, want %v", tc.verb, tc.resource, tc.ns, got, tc.want)
		}
	}
}

// checkGuard writes as the agent's ServiceAccount (impersonated) and
// checks that agent-guard lets through what the agent does in its own
// namespaces and stops what RBAC alone would allow elsewhere.
func checkGuard(t *testing.T, c *cluster) {
	ctx := context.Background()
	cfg := rest.CopyConfig(c.cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: agentSA, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:qonnect-system", "system:authenticated"}}
	as := kubernetes.NewForConfigOrDie(cfg)
	managed := map[string]string{"app.kubernetes.io/managed-by": "qonnect"}

	// The policy takes effect a moment after it is created.
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := as.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "guard-probe"}}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) {
			if !strings.Contains(err.Error(), "qonnect-agent may write only into namespaces labelled app.kubernetes.io/managed-by=qonnect; namespace default is not") {
				t.Errorf("denied, but not by the guard: %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent may still write into default a minute after the policy was made: %v", err)
		}
		time.Sleep(time.Second)
	}

	mustDeny := func(what, msg string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want it denied with %q", what, err, msg)
		}
	}
	mustAllow := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	_, err := as.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: managed}}, metav1.CreateOptions{})
	mustAllow("create a labelled namespace", err)
	_, err = as.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "plain"}}, metav1.CreateOptions{})
	mustDeny("create an unlabelled namespace", "may create or change only namespaces labelled", err)
	_, err = as.CoreV1().ConfigMaps("shop").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}}, metav1.CreateOptions{})
	mustAllow("create a configmap in its namespace", err)
	mustAllow("delete it", as.CoreV1().ConfigMaps("shop").Delete(ctx, "cm", metav1.DeleteOptions{}))
	_, err = as.CoreV1().Namespaces().Patch(ctx, "kube-system", "application/merge-patch+json",
		[]byte(`{"metadata":{"labels":{"app.kubernetes.io/managed-by":"qonnect"}}}`), metav1.PatchOptions{})
	mustDeny("label kube-system as qonnect's", "may create or change only namespaces labelled", err)
	_, err = as.CoreV1().Services("qonnect-system").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "x"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
	mustDeny("create a service in qonnect-system", "namespace qonnect-system is not", err)
	err = as.CoreV1().Services("kube-system").Delete(ctx, "kube-dns", metav1.DeleteOptions{})
	if err == nil || (!strings.Contains(err.Error(), "namespace kube-system is not") && !apierrors.IsNotFound(err)) {
		t.Errorf("delete a service in kube-system: %v", err)
	}
	_, err = as.CoreV1().Events("default").Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e1"},
		InvolvedObject: corev1.ObjectReference{Kind: "Namespace", Name: "shop"}, Reason: "Test", Message: "m"}, metav1.CreateOptions{})
	mustAllow("an event in default", err)
	_, err = as.CoordinationV1().Leases("qonnect-system").Create(ctx, leaseNamed("qonnect-agent"), metav1.CreateOptions{})
	mustAllow("its lease", err)
	_ = c.kube.CoordinationV1().Leases("qonnect-system").Delete(ctx, "qonnect-agent", metav1.DeleteOptions{})
	// Later steps apply an application into "shop": wait until the
	// namespace is really gone, not just terminating.
	_ = c.kube.CoreV1().Namespaces().Delete(ctx, "shop", metav1.DeleteOptions{})
	deadline = time.Now().Add(time.Minute)
	for {
		_, err := c.kube.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace shop still there a minute after its deletion: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkUserRole binds the Role a person needs to use the plugin through a
// kube context and checks it gives that and no other Secret.
func checkUserRole(t *testing.T, fx *fixture, c *cluster) {
	ctx := context.Background()
	_, err := fx.kubectl("", "--context", c.name, "-n", DefaultNamespace, "create", "rolebinding", "qonnect-users", "--role", "qonnect-user", "--user", "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer c.kube.RbacV1().RoleBindings(DefaultNamespace).Delete(ctx, "qonnect-users", metav1.DeleteOptions{})
	for _, tc := range []struct {
		verb, resource string
		want           bool
	}{
		{"get", "secrets/qonnect-user-default", true},
		{"list", "pods", true},
		{"create", "pods/portforward", true},
		{"get", "secrets/qonnect-ca", false},
		{"get", "secrets/qonnect-lead-tls", false},
		{"list", "secrets", false},
		{"create", "pods", false},
		{"create", "pods/exec", false},
	} {
		if got := canI(t, fx, c.name, "alice", tc.verb, tc.resource, DefaultNamespace); got != tc.want {
			t.Errorf("alice can %s %s: %v, want %v", tc.verb, tc.resource, got, tc.want)
		}
	}
	if canI(t, fx, c.name, "bob", "get", "secrets/qonnect-user-default", DefaultNamespace) {
		t.Error("bob, with no binding, can read the user certificate")
	}
}

func writeTLS(t *testing.T, dir string, s *corev1.Secret) pki.Files {
	t.Helper()
	f := pki.Files{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key")}
	for path, key := range map[string]string{f.CA: "ca.crt", f.Cert: corev1.TLSCertKey, f.Key: corev1.TLSPrivateKeyKey} {
		if err := os.WriteFile(path, s.Data[key], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}
