package agent

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/spec"
)

func webAssignment(t *testing.T, gen int64) apiv1.Assignment {
	return apiv1.Assignment{
		App: "shop", Component: "web", Namespace: "shop", Generation: gen,
		Nodes:     []string{"n1"},
		Addresses: map[string]string{"api": "api.cloud-1.example:8080"},
		Resources: []spec.Object{
			obj(t, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions: [{key: disk, operator: In, values: [ssd]}]
      containers:
      - name: web
        image: nginx
        env: [{name: API, value: "http://${qonnect:api}/v1"}]`),
			obj(t, `{apiVersion: v1, kind: Service, metadata: {name: web}, spec: {ports: [{port: 80}]}}`),
			obj(t, `{apiVersion: v1, kind: ConfigMap, metadata: {name: web-config}, data: {k: v}}`),
		},
	}
}

func node(name string, labels map[string]string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"),
				corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"), corev1.ResourcePods: resource.MustParse("110"),
			},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			NodeInfo:   corev1.NodeSystemInfo{Architecture: "amd64"},
		},
	}
}

func TestAppliesAssignmentAndReportsHealth(t *testing.T) {
	e := newKubeEnv(t, node("n1", map[string]string{LabelHostname: "n1"}))
	lead := newFakeLead(t)
	lead.set(webAssignment(t, 3))
	startAgent(t, e, Config{}, lead)

	var dep *unstructured.Unstructured
	waitFor(t, 5*time.Second, "the deployment, service and config map", func() bool {
		dep = e.get(gvrDeployment, "shop", "web")
		return dep != nil && e.get(gvrService, "shop", "web") != nil && e.get(gvrConfigMap, "shop", "web-config") != nil
	})
	ns, err := e.kube.CoreV1().Namespaces().Get(context.Background(), "shop", metav1.GetOptions{})
	if err != nil || ns.Labels[fleet.LabelManagedBy] != fleet.ManagedByValue {
		t.Fatalf("namespace: %v %v", ns, err)
	}
	l := dep.GetLabels()
	if l[fleet.LabelApp] != "shop" || l[fleet.LabelComponent] != "web" || l[fleet.LabelGeneration] != "3" || l[fleet.LabelManagedBy] != "qonnect" {
		t.Errorf("labels %v", l)
	}
	terms := asJSON(t, fieldOf(t, dep, "spec", "template", "spec", "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms"))
	if want := `[{"matchExpressions":[{"key":"disk","operator":"In","values":["ssd"]},{"key":"kubernetes.io/hostname","operator":"In","values":["n1"]}]}]`; terms != want {
		t.Errorf("terms %s, want %s", terms, want)
	}
	env := asJSON(t, fieldOf(t, dep, "spec", "template", "spec", "containers"))
	if !strings.Contains(env, "http://api.cloud-1.example:8080/v1") {
		t.Errorf("address not filled: %s", env)
	}

	waitFor(t, 5*time.Second, "Progressing status", func() bool {
		s, ok := lead.status("shop", "web")
		return ok && s.Phase == fleet.PhaseProgressing && s.Generation == 3 && s.Desired == 2
	})
	// The deployment controller catches up.
	d, err := e.kube.AppsV1().Deployments("shop").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2}
	if _, err := e.kube.AppsV1().Deployments("shop").UpdateStatus(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "Healthy status", func() bool {
		s, ok := lead.status("shop", "web")
		return ok && s.Phase == fleet.PhaseHealthy && s.Generation == 3 && s.Ready == 2 && s.Cluster == "edge-1"
	})
	if !slices.ContainsFunc(drain(e), func(s string) bool { return strings.Contains(s, ReasonApplied) }) {
		t.Error("no Applied event recorded")
	}
}

func drain(e *kubeEnv) []string {
	var out []string
	for {
		select {
		case ev := <-e.events.Events:
			out = append(out, ev)
		default:
			return out
		}
	}
}

func TestBadManifestFailsAloneWithServerMessage(t *testing.T) {
	e := newKubeEnv(t)
	e.setReject(func(u *unstructured.Unstructured) error {
		if u.GetName() == "bad" {
			return apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "bad", field.ErrorList{
				field.Required(field.NewPath("spec", "template", "spec", "containers"), "")})
		}
		return nil
	})
	lead := newFakeLead(t)
	bad := apiv1.Assignment{App: "shop", Component: "broken", Namespace: "shop", Generation: 2, Resources: []spec.Object{
		obj(t, `{apiVersion: apps/v1, kind: Deployment, metadata: {name: bad}, spec: {template: {spec: {}}}}`),
		obj(t, `{apiVersion: example.com/v1, kind: Widget, metadata: {name: w}}`),
		obj(t, `{apiVersion: v1, kind: ConfigMap, metadata: {name: fine}}`),
	}}
	outside := apiv1.Assignment{App: "shop", Component: "sneaky", Namespace: "shop", Generation: 2, Resources: []spec.Object{
		obj(t, `{apiVersion: v1, kind: Secret, metadata: {name: s, namespace: kube-system}}`),
		obj(t, `{apiVersion: rbac.authorization.k8s.io/v1, kind: ClusterRole, metadata: {name: root}}`),
	}}
	lead.set(webAssignment(t, 2), bad, outside)
	startAgent(t, e, Config{}, lead)

	waitFor(t, 5*time.Second, "Failed status of broken", func() bool {
		s, ok := lead.status("shop", "broken")
		return ok && s.Phase == fleet.PhaseFailed
	})
	s, _ := lead.status("shop", "broken")
	for _, want := range []string{
		`Deployment.apps "bad" is invalid: spec.template.spec.containers: Required value`,
		"the cluster does not serve example.com/v1, Kind=Widget",
	} {
		if !strings.Contains(s.Message, want) {
			t.Errorf("message %q lacks %q", s.Message, want)
		}
	}
	if s.Generation != 2 {
		t.Errorf("generation %d", s.Generation)
	}
	if e.get(gvrConfigMap, "shop", "fine") == nil {
		t.Error("the valid object of the failed component was not applied")
	}
	if e.get(gvrDeployment, "shop", "web") == nil {
		t.Error("the other component was not applied")
	}
	if e.mapper.resets.Load() == 0 {
		t.Error("an unknown kind did not reset the RESTMapper")
	}

	waitFor(t, 5*time.Second, "Failed status of sneaky", func() bool {
		s, ok := lead.status("shop", "sneaky")
		return ok && s.Phase == fleet.PhaseFailed
	})
	s, _ = lead.status("shop", "sneaky")
	if !strings.Contains(s.Message, `outside the application's namespace "shop"`) || !strings.Contains(s.Message, "ClusterRole/root is cluster-scoped") {
		t.Errorf("message %q", s.Message)
	}
	if e.get(schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, "kube-system", "s") != nil {
		t.Error("a secret was written to kube-system")
	}
	events := strings.Join(drain(e), "\n")
	if !strings.Contains(events, ReasonRefused) || !strings.Contains(events, ReasonApplyFailed) {
		t.Errorf("events lack refusal or failure:\n%s", events)
	}
}

func TestRemovesOnlyWhatTheLeadNoLongerAssigns(t *testing.T) {
	// Objects that look like qonnect's but are not its to remove.
	userCM := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "users", "namespace": "shop", "labels": map[string]any{
			fleet.LabelManagedBy: "qonnect", fleet.LabelApp: "shop", fleet.LabelComponent: "gone"}},
	}}
	e := newKubeEnv(t)
	if _, err := e.dyn.Resource(gvrConfigMap).Namespace("shop").Create(context.Background(), userCM, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	lead := newFakeLead(t)
	db := apiv1.Assignment{App: "shop", Component: "db", Namespace: "shop", Generation: 1, Resources: []spec.Object{
		obj(t, `{apiVersion: v1, kind: ConfigMap, metadata: {name: db}}`),
	}}
	cache := apiv1.Assignment{App: "shop", Component: "cache", Namespace: "shop", Generation: 1, Resources: []spec.Object{
		obj(t, `{apiVersion: v1, kind: ConfigMap, metadata: {name: cache}}`),
	}}
	lead.set(webAssignment(t, 1), db, cache)
	startAgent(t, e, Config{}, lead)
	waitFor(t, 5*time.Second, "everything applied", func() bool {
		return e.get(gvrConfigMap, "shop", "db") != nil && e.get(gvrConfigMap, "shop", "cache") != nil && e.get(gvrDeployment, "shop", "web") != nil
	})

	// web drops its config map in generation 2; db moves away (leaving);
	// cache is no longer assigned at all.
	web2 := webAssignment(t, 2)
	web2.Resources = web2.Resources[:2]
	db.Leaving = true
	lead.set(web2, db)
	waitFor(t, 5*time.Second, "cache removed", func() bool { return e.get(gvrConfigMap, "shop", "cache") == nil })
	waitFor(t, 5*time.Second, "web-config removed", func() bool { return e.get(gvrConfigMap, "shop", "web-config") == nil })
	if e.get(gvrConfigMap, "shop", "db") == nil {
		t.Error("a leaving component was removed")
	}
	if e.get(gvrDeployment, "shop", "web") == nil || e.get(gvrService, "shop", "web") == nil {
		t.Error("an assigned object was removed")
	}
	if e.get(gvrConfigMap, "shop", "users") == nil {
		t.Error("an object qonnect did not apply was removed")
	}
	if _, err := e.kube.CoreV1().Namespaces().Get(context.Background(), "shop", metav1.GetOptions{}); err != nil {
		t.Errorf("namespace: %v", err)
	}

	// The lead drops db once its new home is healthy.
	lead.set(web2)
	waitFor(t, 5*time.Second, "db removed", func() bool { return e.get(gvrConfigMap, "shop", "db") == nil })
	if e.get(gvrConfigMap, "shop", "users") == nil {
		t.Error("an object qonnect did not apply was removed")
	}
}

func TestNeverTakesOverAnObjectItDidNotCreate(t *testing.T) {
	e := newKubeEnv(t)
	theirs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "web-config", "namespace": "shop"},
		"data":     map[string]any{"k": "theirs"},
	}}
	if _, err := e.dyn.Resource(gvrConfigMap).Namespace("shop").Create(context.Background(), theirs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	lead := newFakeLead(t)
	lead.set(webAssignment(t, 1))
	startAgent(t, e, Config{}, lead)
	waitFor(t, 5*time.Second, "Failed status", func() bool {
		s, ok := lead.status("shop", "web")
		return ok && s.Phase == fleet.PhaseFailed
	})
	s, _ := lead.status("shop", "web")
	if !strings.Contains(s.Message, "ConfigMap/web-config: an object of that name exists and qonnect did not create it") {
		t.Errorf("message %q", s.Message)
	}
	if cm := e.get(gvrConfigMap, "shop", "web-config"); cm == nil || fieldOf(t, cm, "data", "k") != "theirs" || len(cm.GetLabels()) != 0 {
		t.Errorf("their config map was changed: %v", cm)
	}
	if e.get(gvrDeployment, "shop", "web") == nil {
		t.Error("the component's other objects were not applied")
	}
}

func TestKeepsEverythingWhileNoLeadAnswers(t *testing.T) {
	e := newKubeEnv(t)
	lead := newFakeLead(t)
	lead.set(webAssignment(t, 1))
	startAgent(t, e, Config{HeartbeatInterval: 50 * time.Millisecond, Resync: 300 * time.Millisecond}, lead)
	waitFor(t, 5*time.Second, "applied and reported", func() bool {
		_, ok := lead.status("shop", "web")
		return ok && e.get(gvrDeployment, "shop", "web") != nil
	})

	lead.stop()
	// Several resyncs and heartbeats pass with no lead.
	time.Sleep(1500 * time.Millisecond)
	if d := e.deleted(); len(d) > 0 {
		t.Fatalf("deleted %v while no lead answered", d)
	}
	if e.get(gvrDeployment, "shop", "web") == nil || e.get(gvrConfigMap, "shop", "web-config") == nil {
		t.Fatal("objects disappeared while no lead answered")
	}

	_, before, _, _ := lead.counts()
	lead.start()
	waitFor(t, 5*time.Second, "status flowing again", func() bool {
		_, after, _, _ := lead.counts()
		return after > before+2
	})
	if d := e.deleted(); len(d) > 0 {
		t.Fatalf("deleted %v after the lead came back with the same assignments", d)
	}
}

func TestFailsOverToLearnedLead(t *testing.T) {
	e := newKubeEnv(t)
	a, b := newFakeLead(t), newFakeLead(t)
	for _, l := range []*fakeLead{a, b} {
		l.leads = []string{a.url(), b.url()}
		l.set(webAssignment(t, 1))
	}
	// The agent is told only of a; it learns b from a's answers.
	startAgent(t, e, Config{}, a)
	waitFor(t, 5*time.Second, "status at a", func() bool { _, ok := a.status("shop", "web"); return ok })
	a.stop()
	start := time.Now()
	waitFor(t, 5*time.Second, "heartbeats at b", func() bool { _, reports, _, _ := b.counts(); return reports > 2 })
	t.Logf("heartbeats reached the second lead %v after the first stopped", time.Since(start).Round(time.Millisecond))

	// A new placement through b reaches the cluster.
	extra := apiv1.Assignment{App: "shop", Component: "cache", Namespace: "shop", Generation: 1, Resources: []spec.Object{
		obj(t, `{apiVersion: v1, kind: ConfigMap, metadata: {name: cache}}`),
	}}
	b.set(webAssignment(t, 1), extra)
	waitFor(t, 5*time.Second, "assignment through b", func() bool { return e.get(gvrConfigMap, "shop", "cache") != nil })
	if d := e.deleted(); len(d) > 0 {
		t.Errorf("deleted %v during failover", d)
	}
}

func TestRegistersAgainWhenForgotten(t *testing.T) {
	e := newKubeEnv(t, node("n1", nil))
	lead := newFakeLead(t)
	startAgent(t, e, Config{}, lead)
	waitFor(t, 5*time.Second, "a full node report", func() bool { _, _, _, n := lead.counts(); return n >= 1 })
	lead.mu.Lock()
	lead.forget = true
	lead.mu.Unlock()
	waitFor(t, 5*time.Second, "a second registration", func() bool { r, _, _, _ := lead.counts(); return r >= 2 })
	waitFor(t, 5*time.Second, "a second full node report", func() bool {
		full := 0
		for _, r := range lead.nodeReports() {
			if r.Full {
				full++
			}
		}
		return full >= 2
	})
}

func TestNodeReports(t *testing.T) {
	pod := func(name, nodeName string, phase corev1.PodPhase, cpu, mem string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}}}}},
			Status: corev1.PodStatus{Phase: phase},
		}
	}
	n1 := node("n1", map[string]string{fleet.LabelEnergy: "0.0024", corev1.LabelArchStable: "arm64"})
	n1.Status.NodeInfo.Architecture = ""
	n2 := node("n2", nil)
	n2.Spec.Unschedulable = true
	n2.Status.Conditions = append(n2.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionTrue})
	e := newKubeEnv(t, n1, n2,
		pod("a", "n1", corev1.PodRunning, "500m", "1Gi"),
		pod("b", "n1", corev1.PodPending, "250m", "256Mi"),
		pod("done", "n1", corev1.PodSucceeded, "4", "4Gi"),
		pod("unbound", "", corev1.PodPending, "1", "1Gi"),
	)
	lead := newFakeLead(t)
	startAgent(t, e, Config{}, lead)

	waitFor(t, 5*time.Second, "a full report", func() bool { return len(lead.nodeReports()) >= 1 })
	full := lead.nodeReports()[0]
	if !full.Full || len(full.Nodes) != 2 {
		t.Fatalf("first report %+v", full)
	}
	got := map[string]fleet.Node{}
	for _, n := range full.Nodes {
		got[n.Name] = n
	}
	g1 := got["n1"]
	if g1.Requested != (fleet.Resources{MilliCPU: 750, MemoryBytes: (1 << 30) + (256 << 20), Pods: 2}) {
		t.Errorf("n1 requested %+v", g1.Requested)
	}
	if g1.Allocatable != (fleet.Resources{MilliCPU: 4000, MemoryBytes: 8 << 30, EphemeralStorage: 100 << 30, Pods: 110}) {
		t.Errorf("n1 allocatable %+v", g1.Allocatable)
	}
	if g1.Architecture != "arm64" || !g1.Ready || g1.Labels[fleet.LabelEnergy] != "0.0024" || g1.Cluster != "edge-1" {
		t.Errorf("n1 %+v", g1)
	}
	if g2 := got["n2"]; !g2.Unschedulable || !g2.MemoryPressure || g2.Requested.Pods != 0 {
		t.Errorf("n2 %+v", g2)
	}

	// A pod bound to n2 is reported as a change of n2 alone.
	if _, err := e.kube.CoreV1().Pods("default").Create(context.Background(), pod("c", "n2", corev1.PodRunning, "1", "1Gi"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a change report", func() bool { return len(lead.nodeReports()) >= 2 })
	ch := lead.nodeReports()[1]
	if ch.Full || len(ch.Nodes) != 1 || ch.Nodes[0].Name != "n2" || ch.Nodes[0].Requested.MilliCPU != 1000 {
		t.Errorf("change report %+v", ch)
	}

	if err := e.kube.CoreV1().Nodes().Delete(context.Background(), "n1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a deletion report", func() bool {
		r := lead.nodeReports()
		return len(r) >= 3 && slices.Equal(r[len(r)-1].Deleted, []string{"n1"})
	})
}

// managedObject is an object as an earlier run of the agent left it:
// qonnect's labels and its server-side apply field manager.
func managedObject(name, app, comp string, byQonnect bool) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": "shop", "uid": name + "-uid", "labels": map[string]any{
			fleet.LabelManagedBy: "qonnect", fleet.LabelApp: app, fleet.LabelComponent: comp, fleet.LabelGeneration: "1"}},
	}}
	if byQonnect {
		u.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: fleet.FieldManager, Operation: metav1.ManagedFieldsOperationApply, APIVersion: "v1"}})
	}
	return u
}

func TestRemovesWhatAnEarlierRunLeftAfterARestart(t *testing.T) {
	e := newKubeEnv(t)
	e.disco = newStaticDiscovery(e)
	owned := managedObject("owned-by-rs", "old", "gone", true)
	owned.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "x", UID: "x"}})
	// A Service: a type this run of the agent does not apply, found only by
	// looking through every type.
	staleSvc := managedObject("stale", "old", "gone", true)
	staleSvc.SetKind("Service")
	if _, err := e.dyn.Resource(gvrService).Namespace("shop").Create(context.Background(), staleSvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []*unstructured.Unstructured{
		managedObject("stale-cm", "old", "gone", true), // applied by qonnect, no longer assigned
		managedObject("copied", "old", "gone", false),  // labels copied by someone else
		managedObject("kept", "shop", "web", true),     // still assigned
		owned, // the garbage collector's to remove
	} {
		if _, err := e.dyn.Resource(gvrConfigMap).Namespace("shop").Create(context.Background(), u, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	lead := newFakeLead(t)
	lead.set(apiv1.Assignment{App: "shop", Component: "web", Namespace: "shop", Generation: 1, Resources: []spec.Object{
		obj(t, `{apiVersion: v1, kind: ConfigMap, metadata: {name: kept}}`),
	}})
	startAgent(t, e, Config{}, lead)
	waitFor(t, 5*time.Second, "stale service removed", func() bool { return e.get(gvrService, "shop", "stale") == nil })
	waitFor(t, 5*time.Second, "stale config map removed", func() bool { return e.get(gvrConfigMap, "shop", "stale-cm") == nil })
	for _, name := range []string{"copied", "kept", "owned-by-rs"} {
		if e.get(gvrConfigMap, "shop", name) == nil {
			t.Errorf("%s was removed", name)
		}
	}
}

func TestLargeClusterReportsInBatches(t *testing.T) {
	defer func(n int) { maxNodesPerReport = n }(maxNodesPerReport)
	maxNodesPerReport = 2
	var objs []runtime.Object
	for i := range 5 {
		objs = append(objs, node(fmt.Sprintf("n%d", i), nil))
	}
	e := newKubeEnv(t, objs...)
	lead := newFakeLead(t)
	startAgent(t, e, Config{}, lead)
	waitFor(t, 5*time.Second, "3 batches", func() bool { return len(lead.nodeReports()) >= 3 })
	seen := map[string]bool{}
	for _, r := range lead.nodeReports()[:3] {
		if r.Full || len(r.Nodes) > 2 {
			t.Errorf("batch %+v: want a non-full report of at most 2 nodes", r)
		}
		for _, n := range r.Nodes {
			seen[n.Name] = true
		}
	}
	if len(seen) != 5 {
		t.Errorf("batches carried %d nodes, want 5", len(seen))
	}
	// A node deleted is reported deleted.
	if err := e.kube.CoreV1().Nodes().Delete(context.Background(), "n3", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "n3 deleted", func() bool {
		r := lead.nodeReports()
		return slices.Equal(r[len(r)-1].Deleted, []string{"n3"})
	})
}

func TestReportedLabels(t *testing.T) {
	l := map[string]string{fleet.LabelEnergy: "1", corev1.LabelHostname: "h", "topology.kubernetes.io/zone": "z"}
	for i := range 100 {
		l[fmt.Sprintf("custom-%03d", i)] = "x"
	}
	got := reportedLabels(l)
	if len(got) != maxNodeLabels {
		t.Fatalf("%d labels, want %d", len(got), maxNodeLabels)
	}
	for _, k := range []string{fleet.LabelEnergy, corev1.LabelHostname, "topology.kubernetes.io/zone", "custom-000"} {
		if _, ok := got[k]; !ok {
			t.Errorf("label %s dropped", k)
		}
	}
	if _, ok := got["custom-099"]; ok {
		t.Error("kept a label past the limit instead of a well-known one")
	}
}
