package agent

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/spec"
	"qonnect.io/qonnect/manifests"
)

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestIntegrationLeastPrivilege runs the agent as the ServiceAccount of
// the install manifests, with their ClusterRole and the agent-guard
// admission policy, to show the agent needs no more than they grant and
// that what they refuse is reported, not retried noisily.
func TestIntegrationLeastPrivilege(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: starts a real control plane; not in -short")
	}
	f, cs := startSandbox(t, "testdata/one.yaml")
	const cluster, agentNS = "edge-1", "qonnect-system"
	ctx := context.Background()
	cfg, err := f.RESTConfig(cluster)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cs.Discovery()))
	for _, ns := range []string{agentNS, "theirs"} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// What `kubectl apply -k manifests/agent` and `-k manifests/agent-guard`
	// create, minus the Deployment: the agent runs here, as that account.
	for _, file := range []string{"agent/serviceaccount.yaml", "agent/rbac.yaml", "agent-guard/policy.yaml"} {
		data, err := fs.ReadFile(manifests.FS, file)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(data), "\n---") {
			var u unstructured.Unstructured
			if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil || u.Object == nil || u.GetKind() == "" {
				continue
			}
			m, err := mapper.RESTMapping(u.GroupVersionKind().GroupKind(), u.GroupVersionKind().Version)
			if err != nil {
				t.Fatalf("%s %s: %v", file, u.GetKind(), err)
			}
			ri := dynamic.ResourceInterface(dyn.Resource(m.Resource))
			if m.Scope.Name() == "namespace" {
				u.SetNamespace(agentNS)
				ri = dyn.Resource(m.Resource).Namespace(agentNS)
			}
			if subjects, ok := u.Object["subjects"].([]any); ok {
				for _, s := range subjects {
					s.(map[string]any)["namespace"] = agentNS
				}
			}
			if _, err := ri.Create(ctx, &u, metav1.CreateOptions{}); err != nil {
				t.Fatalf("%s %s/%s: %v", file, u.GetKind(), u.GetName(), err)
			}
		}
	}
	tok, err := cs.CoreV1().ServiceAccounts(agentNS).CreateToken(ctx, "qonnect-agent",
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: ptr[int64](3600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := clientcmd.LoadFromFile(f.Kubeconfig(cluster))
	if err != nil {
		t.Fatal(err)
	}
	for name := range kc.AuthInfos {
		kc.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	}
	kcPath := filepath.Join(t.TempDir(), "agent.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kcPath); err != nil {
		t.Fatal(err)
	}

	// The API server loads a new admission policy a moment after it is
	// created; wait until it refuses the account a write where it must.
	acfg := rest.CopyConfig(cfg)
	acfg.TLSClientConfig = rest.TLSClientConfig{CAData: cfg.CAData, CAFile: cfg.CAFile}
	acfg.BearerToken = tok.Status.Token
	as, err := kubernetes.NewForConfig(acfg)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the agent-guard policy in force", func() bool {
		_, err := as.CoreV1().ConfigMaps("theirs").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe"}},
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), "qonnect-agent-namespaces")
	})

	lead := tlsLead(t, f)
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(ioMulti(&logs, os.Stderr), &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	runAgentLogged(t, log, f, cluster, lead, "--kubeconfig", kcPath, "--namespace", agentNS)

	web := webAssignmentRBAC(t)
	inTheirs := apiv1.Assignment{App: "intruder", Component: "x", Namespace: "theirs", Generation: 1, Resources: []spec.Object{
		obj(t, `{apiVersion: v1, kind: ConfigMap, metadata: {name: x}}`),
	}}
	withSecret := apiv1.Assignment{App: "shop", Component: "keys", Namespace: "shop", Generation: 1, Resources: []spec.Object{
		obj(t, `{apiVersion: v1, kind: Secret, metadata: {name: k}, stringData: {k: v}}`),
	}}
	lead.set(web, inTheirs, withSecret)
	waitFor(t, 60*time.Second, "web Healthy as the agent's ServiceAccount", func() bool {
		s, ok := lead.status("shop", "web")
		return ok && s.Phase == fleet.PhaseHealthy
	})
	waitFor(t, 30*time.Second, "the write into someone else's namespace Failed", func() bool {
		s, ok := lead.status("intruder", "x")
		return ok && s.Phase == fleet.PhaseFailed && strings.Contains(s.Message, "may write only into namespaces labelled app.kubernetes.io/managed-by=qonnect")
	})
	waitFor(t, 30*time.Second, "the Secret Failed as forbidden", func() bool {
		s, ok := lead.status("shop", "keys")
		return ok && s.Phase == fleet.PhaseFailed && strings.Contains(s.Message, "forbidden")
	})
	if _, err := cs.CoreV1().ConfigMaps("theirs").Get(ctx, "x", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a config map reached a namespace qonnect did not make: %v", err)
	}

	lead.set()
	waitFor(t, 30*time.Second, "web removed", func() bool {
		_, err := cs.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	// The lease of the election is where the install put the Role for it.
	if _, err := cs.CoordinationV1().Leases(agentNS).Get(ctx, "qonnect-agent", metav1.GetOptions{}); err != nil {
		t.Errorf("election lease: %v", err)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "level=WARN") && !strings.Contains(line, "component failed to apply") {
			t.Errorf("unexpected warning with the install's RBAC: %s", line)
		}
		if strings.Contains(line, "level=ERROR") {
			t.Errorf("error with the install's RBAC: %s", line)
		}
	}
}

// webAssignmentRBAC is a component of the kinds the install's RBAC grants.
func webAssignmentRBAC(t *testing.T) apiv1.Assignment {
	a := deployment(t, "shop", "web", 1, 2, []string{"e-0", "e-1"}, "")
	a.Resources = append(a.Resources,
		obj(t, `{apiVersion: v1, kind: Service, metadata: {name: web}, spec: {ports: [{port: 80}], selector: {app: web}}}`),
		obj(t, `{apiVersion: v1, kind: ConfigMap, metadata: {name: web-config}, data: {k: v}}`),
	)
	return a
}

func ioMulti(ws ...interface{ Write([]byte) (int, error) }) *multiWriter { return &multiWriter{ws} }

type multiWriter struct {
	ws []interface{ Write([]byte) (int, error) }
}

func (m *multiWriter) Write(p []byte) (int, error) {
	for _, w := range m.ws {
		_, _ = w.Write(p)
	}
	return len(p), nil
}
