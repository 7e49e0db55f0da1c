package agent

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/pki"
	"qonnect.io/qonnect/internal/sandbox"
	"qonnect.io/qonnect/internal/sandbox/sandboxtest"
	"qonnect.io/qonnect/internal/spec"
)

// The integration tests run the agent (in this process, through the same
// Options.Run as the binary) against a real kube-apiserver,
// controller-manager and scheduler with kwok nodes, started by the
// sandbox. The lead side is a fake lead over mutual TLS with certificates
// of the sandbox's CA (see fakeLead).

// startSandbox brings up the one-cluster profile.
func startSandbox(t testing.TB, profile string) (*sandbox.Federation, kubernetes.Interface) {
	t.Helper()
	p, err := sandbox.LoadProfile(profile)
	if err != nil {
		t.Fatal(err)
	}
	f := sandboxtest.Start(t, p)
	cs, err := f.Client(p.Clusters[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	return f, cs
}

// tlsLead starts a fake lead serving a lead certificate of the sandbox's CA.
func tlsLead(t testing.TB, f *sandbox.Federation) *fakeLead {
	t.Helper()
	ca, err := f.CA()
	if err != nil {
		t.Fatal(err)
	}
	is, err := ca.Issue(pki.Request{Role: pki.RoleLead, Name: "fake-lead", Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	files, err := ca.WriteFiles(t.TempDir(), "fake-lead", is)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := pki.ServerConfig(files)
	if err != nil {
		t.Fatal(err)
	}
	return newFakeLeadTLS(t, tc)
}

// runAgent runs the agent on cluster with the binary's flags until the
// test ends or stop is called.
func runAgent(t testing.TB, f *sandbox.Federation, cluster string, lead *fakeLead, extra ...string) (stop func()) {
	return runAgentLogged(t, testLogger(t), f, cluster, lead, extra...)
}

// runAgentLogged is runAgent logging to log.
func runAgentLogged(t testing.TB, log *slog.Logger, f *sandbox.Federation, cluster string, lead *fakeLead, extra ...string) (stop func()) {
	t.Helper()
	o := NewOptions()
	fs := flag.NewFlagSet("qonnect-agent", flag.ContinueOnError)
	o.AddFlags(fs)
	files := f.AgentTLS(cluster)
	args := append([]string{
		"--cluster", cluster, "--tier", "edge", "--endpoint", sandbox.Endpoint(cluster),
		"--leads", lead.url(), "--kubeconfig", f.Kubeconfig(cluster),
		"--tls-ca", files.CA, "--tls-cert", files.Cert, "--tls-key", files.Key,
		"--heartbeat-interval", "500ms", "--resync", "5s", "--metrics-addr", "127.0.0.1:0",
	}, extra...)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx, log) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("agent: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("agent did not stop within 20s")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// podsOf lists a component's pods.
func podsOf(t testing.TB, cs kubernetes.Interface, ns, app, comp string) []corev1.Pod {
	t.Helper()
	l, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: fleet.LabelApp + "=" + app + "," + fleet.LabelComponent + "=" + comp,
	})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// allRunning says whether n pods run, each on one of nodes.
func allRunning(pods []corev1.Pod, n int, nodes []string) bool {
	running := 0
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		if p.Status.Phase != corev1.PodRunning || !slices.Contains(nodes, p.Spec.NodeName) {
			return false
		}
		running++
	}
	return running == n
}

// deployment is a component with one Deployment of n replicas.
func deployment(t testing.TB, app, comp string, gen int64, n int, nodes []string, affinity string) apiv1.Assignment {
	return apiv1.Assignment{
		App: app, Component: comp, Namespace: app, Generation: gen, Nodes: nodes,
		Resources: []spec.Object{obj(t, fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  replicas: %[2]d
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      %[3]s
      containers:
      - name: %[1]s
        image: docker.io/istio/examples-bookinfo-%[1]s-v1:1.20.2
        resources: {requests: {cpu: 100m, memory: 64Mi}}`, comp, n, affinity))},
	}
}

const userAffinity = `affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions: [{key: qonnect.io/location, operator: In, values: [lab]}]
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 5
            preference: {matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [amd64]}]}`

func TestIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: starts a real control plane; not in -short")
	}
	f, cs := startSandbox(t, "testdata/one.yaml")
	const cluster = "edge-1"
	lead := tlsLead(t, f)
	lead.leads = []string{lead.url()}
	stopFirst := runAgent(t, f, cluster, lead)
	ctx := context.Background()

	waitFor(t, 30*time.Second, "registration and a full node report", func() bool {
		for _, r := range lead.nodeReports() {
			if r.Full && len(r.Nodes) == 3 {
				return true
			}
		}
		return false
	})

	chosen := []string{"e-0", "e-1"}
	web := deployment(t, "shop", "web", 1, 3, chosen, userAffinity)
	var webUID types.UID

	t.Run("assigned component runs on the chosen nodes and reports Healthy", func(t *testing.T) {
		start := time.Now()
		lead.set(web)
		waitFor(t, 60*time.Second, "3 pods Running on e-0/e-1", func() bool {
			return allRunning(podsOf(t, cs, "shop", "shop", "web"), 3, chosen)
		})
		t.Logf("assignment → 3 pods Running in %v", time.Since(start).Round(time.Millisecond))
		waitFor(t, 30*time.Second, "Healthy generation 1", func() bool {
			s, ok := lead.status("shop", "web")
			return ok && s.Phase == fleet.PhaseHealthy && s.Generation == 1 && s.Ready == 3 && s.Desired == 3
		})
		d, err := cs.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		webUID = d.UID
		na := d.Spec.Template.Spec.Affinity.NodeAffinity
		terms := na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		if len(terms) != 1 || len(terms[0].MatchExpressions) != 2 ||
			terms[0].MatchExpressions[0].Key != fleet.LabelLocation ||
			terms[0].MatchExpressions[1].Key != LabelHostname || !slices.Equal(terms[0].MatchExpressions[1].Values, chosen) {
			t.Errorf("required node affinity %+v: want the user's term ANDed with the hostname pin", terms)
		}
		if len(na.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
			t.Errorf("the user's preferred term was lost: %+v", na)
		}
		if d.Labels[fleet.LabelGeneration] != "1" || d.Labels[fleet.LabelManagedBy] != "qonnect" {
			t.Errorf("labels %v", d.Labels)
		}
		ns, err := cs.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
		if err != nil || ns.Labels[fleet.LabelManagedBy] != "qonnect" {
			t.Errorf("namespace %v %v", ns, err)
		}
		evs, err := cs.CoreV1().Events("shop").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(evs.Items, func(e corev1.Event) bool {
			return e.Reason == ReasonApplied && e.InvolvedObject.Name == "web" && e.InvolvedObject.Kind == "Deployment"
		}) {
			t.Errorf("no %s event on the deployment", ReasonApplied)
		}
	})

	t.Run("a bad manifest fails alone with the API server's message", func(t *testing.T) {
		bad := apiv1.Assignment{App: "shop", Component: "broken", Namespace: "shop", Generation: 1, Resources: []spec.Object{
			obj(t, `{apiVersion: apps/v1, kind: Deployment, metadata: {name: broken}, spec: {selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}, spec: {containers: []}}}}`),
			obj(t, `{apiVersion: widgets.example.com/v1, kind: Widget, metadata: {name: w}}`),
			obj(t, `{apiVersion: v1, kind: Secret, metadata: {name: s, namespace: kube-system}}`),
			obj(t, `{apiVersion: v1, kind: ConfigMap, metadata: {name: broken-config}, data: {k: v}}`),
		}}
		lead.set(web, bad)
		waitFor(t, 30*time.Second, "broken Failed", func() bool {
			s, ok := lead.status("shop", "broken")
			return ok && s.Phase == fleet.PhaseFailed
		})
		s, _ := lead.status("shop", "broken")
		for _, want := range []string{
			`Deployment.apps "broken" is invalid: spec.template.spec.containers: Required value`,
			"the cluster does not serve widgets.example.com/v1, Kind=Widget",
			`asks for namespace "kube-system", outside the application's namespace "shop"`,
		} {
			if !strings.Contains(s.Message, want) {
				t.Errorf("status message %q lacks %q", s.Message, want)
			}
		}
		if _, err := cs.CoreV1().ConfigMaps("shop").Get(ctx, "broken-config", metav1.GetOptions{}); err != nil {
			t.Errorf("the valid object of the broken component: %v", err)
		}
		if _, err := cs.CoreV1().Secrets("kube-system").Get(ctx, "s", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("a secret reached kube-system: %v", err)
		}
		if s, _ := lead.status("shop", "web"); s.Phase != fleet.PhaseHealthy {
			t.Errorf("web is %s next to a broken component", s.Phase)
		}
		evs, _ := cs.CoreV1().Events("shop").List(ctx, metav1.ListOptions{})
		if !slices.ContainsFunc(evs.Items, func(e corev1.Event) bool {
			return e.Reason == ReasonApplyFailed && e.InvolvedObject.Name == "broken" && strings.Contains(e.Message, "Required value")
		}) {
			t.Errorf("no %s event on the broken deployment", ReasonApplyFailed)
		}
	})

	t.Run("reassigned elsewhere: removed only once the lead says so", func(t *testing.T) {
		leaving := web
		leaving.Leaving = true
		lead.set(leaving)
		// The broken component is dropped at once; web stays while leaving.
		waitFor(t, 30*time.Second, "broken removed", func() bool {
			_, err := cs.CoreV1().ConfigMaps("shop").Get(ctx, "broken-config", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		})
		time.Sleep(6 * time.Second) // more than a resync
		d, err := cs.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		if err != nil || d.UID != webUID || d.DeletionTimestamp != nil {
			t.Fatalf("a leaving component was touched: %v %v", d, err)
		}
		if !allRunning(podsOf(t, cs, "shop", "shop", "web"), 3, chosen) {
			t.Error("a leaving component's pods stopped running")
		}
		lead.set()
		waitFor(t, 30*time.Second, "web removed", func() bool {
			_, err := cs.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		})
		waitFor(t, 60*time.Second, "web's pods gone", func() bool { return len(podsOf(t, cs, "shop", "shop", "web")) == 0 })
		if _, err := cs.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{}); err != nil {
			t.Errorf("the namespace went with the component: %v", err)
		}
	})

	t.Run("every lead gone: nothing removed, status flows again after", func(t *testing.T) {
		api := deployment(t, "shop", "api", 4, 2, []string{"e-2"}, "")
		lead.set(api)
		waitFor(t, 60*time.Second, "api Healthy", func() bool {
			s, ok := lead.status("shop", "api")
			return ok && s.Phase == fleet.PhaseHealthy && s.Generation == 4
		})
		d, err := cs.AppsV1().Deployments("shop").Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		lead.stop()
		time.Sleep(12 * time.Second) // two resyncs, many heartbeats
		d2, err := cs.AppsV1().Deployments("shop").Get(ctx, "api", metav1.GetOptions{})
		if err != nil || d2.UID != d.UID || d2.DeletionTimestamp != nil {
			t.Fatalf("the deployment changed while no lead answered: %v %v", d2, err)
		}
		if !allRunning(podsOf(t, cs, "shop", "shop", "api"), 2, []string{"e-2"}) {
			t.Error("pods stopped while no lead answered")
		}
		_, before, _, _ := lead.counts()
		lead.start()
		waitFor(t, 30*time.Second, "status reports again", func() bool { _, after, _, _ := lead.counts(); return after >= before+3 })
		// And the long-poll came back too: a new placement applies.
		api.Generation = 5
		lead.set(api)
		waitFor(t, 30*time.Second, "generation 5 Healthy", func() bool {
			s, ok := lead.status("shop", "api")
			return ok && s.Phase == fleet.PhaseHealthy && s.Generation == 5
		})
	})

	t.Run("with two replicas one acts; the other takes over when it stops", func(t *testing.T) {
		regs, _, _, _ := lead.counts()
		runAgent(t, f, cluster, lead)
		time.Sleep(3 * time.Second) // more than the election's retry period
		if r, _, _, _ := lead.counts(); r != regs {
			t.Fatalf("the standby replica registered (%d registrations, want %d)", r, regs)
		}
		stopFirst() // releases the lease
		start := time.Now()
		waitFor(t, 30*time.Second, "the standby registering", func() bool { r, _, _, _ := lead.counts(); return r > regs })
		t.Logf("standby took over %v after the active replica stopped", time.Since(start).Round(time.Millisecond))
		d, err := cs.AppsV1().Deployments("shop").Get(ctx, "api", metav1.GetOptions{})
		if err != nil || d.DeletionTimestamp != nil {
			t.Fatalf("the take-over touched the running component: %v", err)
		}
		api := deployment(t, "shop", "api", 6, 2, []string{"e-2"}, "")
		lead.set(api)
		waitFor(t, 30*time.Second, "generation 6 Healthy from the new replica", func() bool {
			s, ok := lead.status("shop", "api")
			return ok && s.Phase == fleet.PhaseHealthy && s.Generation == 6
		})
	})
}
