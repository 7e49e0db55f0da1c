package install

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && (name == "" || o.GetName() == name) {
			return o
		}
	}
	t.Fatalf("no %s %q among the rendered objects", kind, name)
	return nil
}

func into[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		t.Fatalf("convert %s: %v", u.GetKind(), err)
	}
	return out
}

func TestRenderLead(t *testing.T) {
	peers, err := ParsePeers("a=10.0.0.1:7000=10.0.0.1:7443,b=b.example:7000=b.example:7443")
	if err != nil {
		t.Fatal(err)
	}
	cfg := LeadConfig{ID: "a", Peers: peers, Image: Image{Registry: "reg.example/q/", Tag: "v1.2.3"},
		ServiceType: corev1.ServiceTypeLoadBalancer, StorageSize: "5Gi", StorageClass: "fast"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	objs, err := Render(cfg.Overlay())
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetLabels()[LabelPartOf] != PartOf {
			t.Errorf("%s lacks %s=%s: uninstall would not find it", refOf(o), LabelPartOf, PartOf)
		}
		if o.GetKind() != "Namespace" && o.GetNamespace() != DefaultNamespace {
			t.Errorf("%s is in namespace %q", refOf(o), o.GetNamespace())
		}
	}
	d := into[appsv1.Deployment](t, find(t, objs, "Deployment", LeadName))
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || *d.Spec.Replicas != 1 {
		t.Errorf("strategy %s, replicas %d: want Recreate, 1", d.Spec.Strategy.Type, *d.Spec.Replicas)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != "reg.example/q/qonnect-lead:v1.2.3" {
		t.Errorf("image %q", c.Image)
	}
	// The API port wants a client certificate; the kubelet has none.
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Port.String() != "probe" {
			t.Errorf("probe %+v: want a GET on the probe port", p)
		}
	}
	if !slices.Contains(c.Args, "--probe-addr=0.0.0.0:8080") {
		t.Errorf("args %v lack the probe address", c.Args)
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probe paths %s, %s", c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
	}
	// The settings come from the generated ConfigMap, renamed with its hash.
	cm := into[corev1.ConfigMap](t, find(t, objs, "ConfigMap", ""))
	if !strings.HasPrefix(cm.Name, LeadConfigMap+"-") || cm.Data["id"] != "a" || cm.Data["peers"] != "a=10.0.0.1:7000=10.0.0.1:7443,b=b.example:7000=b.example:7443" ||
		cm.Data["raft-advertise"] != "10.0.0.1:7000" || cm.Data["api-advertise"] != "10.0.0.1:7443" {
		t.Errorf("configmap %s: %v", cm.Name, cm.Data)
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil && e.ValueFrom.ConfigMapKeyRef.Name != cm.Name {
			t.Errorf("env %s refers to configmap %s, not %s", e.Name, e.ValueFrom.ConfigMapKeyRef.Name, cm.Name)
		}
	}
	svc := into[corev1.Service](t, find(t, objs, "Service", LeadName))
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || !svc.Spec.PublishNotReadyAddresses {
		t.Errorf("service type %s, publishNotReadyAddresses %v", svc.Spec.Type, svc.Spec.PublishNotReadyAddresses)
	}
	pvc := into[corev1.PersistentVolumeClaim](t, find(t, objs, "PersistentVolumeClaim", "qonnect-lead-data"))
	if q := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; q.String() != "5Gi" || pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "fast" {
		t.Errorf("pvc %v class %v", q.String(), pvc.Spec.StorageClassName)
	}
	if got := cfg.CertHosts(); !slices.Contains(got, "10.0.0.1") || !slices.Contains(got, "qonnect-lead.qonnect-system.svc") || slices.Contains(got, "b.example") {
		t.Errorf("certificate hosts %v", got)
	}
	checkRestricted(t, &d.Spec.Template.Spec)
}

func TestRenderAgent(t *testing.T) {
	cfg := AgentConfig{Cluster: "edge-1", Tier: "edge", Leads: []string{"10.0.0.1:7443"}, Namespace: "qx", Guard: true, Image: Image{Tag: "t"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	objs, err := Render(cfg.Overlay())
	if err != nil {
		t.Fatal(err)
	}
	ns := find(t, objs, "Namespace", "qx")
	if ns.GetLabels()["app.kubernetes.io/managed-by"] != "" {
		t.Error("qonnect's own namespace carries the label that opens it to the agent")
	}
	for _, kind := range []string{"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ClusterRole", "ClusterRoleBinding"} {
		if o := find(t, objs, kind, ""); o.GetNamespace() != "" {
			t.Errorf("cluster-scoped %s has namespace %q", kind, o.GetNamespace())
		}
	}
	crb := into[rbacv1.ClusterRoleBinding](t, find(t, objs, "ClusterRoleBinding", AgentName))
	if s := crb.Subjects[0]; s.Namespace != "qx" || s.Name != AgentName {
		t.Errorf("binding subject %+v: want the ServiceAccount in qx", s)
	}
	role := into[rbacv1.Role](t, find(t, objs, "Role", "qonnect-agent-election"))
	if got := role.Rules[1].ResourceNames; !slices.Equal(got, []string{AgentName}) {
		t.Errorf("lease rule names %v: kustomize must not rename it", got)
	}
	cr := into[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", AgentName))
	for _, r := range cr.Rules {
		if slices.Contains(r.Resources, "secrets") || slices.Contains(r.Verbs, "*") || slices.Contains(r.Resources, "*") {
			t.Errorf("agent rule %+v is too wide", r)
		}
	}
	d := into[appsv1.Deployment](t, find(t, objs, "Deployment", AgentName))
	if d.Spec.Template.Spec.ServiceAccountName != AgentName || d.Spec.Template.Spec.Containers[0].Image != "qonnect-agent:t" {
		t.Errorf("deployment sa %s image %s", d.Spec.Template.Spec.ServiceAccountName, d.Spec.Template.Spec.Containers[0].Image)
	}
	checkRestricted(t, &d.Spec.Template.Spec)

	cfg.Guard = false
	objs, err = Render(cfg.Overlay())
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if strings.HasPrefix(o.GetKind(), "ValidatingAdmissionPolicy") {
			t.Errorf("--namespace-guard=false still renders %s", refOf(o))
		}
	}
}

// checkRestricted holds a pod to the restricted Pod Security Standard that
// the namespace enforces, and to the rest of what the issue asks.
func checkRestricted(t *testing.T, p *corev1.PodSpec) {
	t.Helper()
	sc := p.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v", sc)
	}
	for _, c := range p.Containers {
		cs := c.SecurityContext
		if cs == nil || cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation ||
			cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem ||
			cs.Capabilities == nil || !slices.Equal(cs.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("container %s security context %+v", c.Name, cs)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("container %s resources %+v", c.Name, c.Resources)
		}
	}
}

func TestParsePeers(t *testing.T) {
	for _, tc := range []struct {
		name, in, err string
		n             int
	}{
		{name: "three", in: "a=h1:7000=h1:7443, b=h2:7000=https://h2:7443,c=[::1]:7000=[::1]:7443", n: 3},
		{name: "empty", in: "", n: 0},
		{name: "two parts", in: "a=h1:7000", err: "want ID=RAFT_HOST:PORT=API_HOST:PORT"},
		{name: "no port", in: "a=h1=h1:7443", err: `address "h1": want HOST:PORT`},
		{name: "bad id", in: "A_1=h:1=h:2", err: `lead ID "A_1"`},
		{name: "twice", in: "a=h:1=h:2,a=i:1=i:2", err: `lead "a" is listed twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePeers(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || len(got) != tc.n {
				t.Fatalf("got %v, %v; want %d peers", got, err, tc.n)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	peers, _ := ParsePeers("a=h:1=h:2,b=i:1=i:2")
	for _, tc := range []struct {
		name string
		cfg  interface{ Validate() error }
		err  string
	}{
		{"lead without id", &LeadConfig{}, "--id is required"},
		{"lead not in peers", &LeadConfig{ID: "c", Peers: peers}, "--peers must list this lead (c) too"},
		{"service type", &LeadConfig{ID: "a", ServiceType: "External"}, `--service-type "External"`},
		{"storage", &LeadConfig{ID: "a", StorageSize: "lots"}, `--storage-size "lots"`},
		{"user", &LeadConfig{ID: "a", Users: []string{"Bob Smith"}}, `--users "Bob Smith"`},
		{"namespace", &LeadConfig{ID: "a", Namespace: "Q"}, `namespace "Q"`},
		{"agent without cluster", &AgentConfig{Tier: "edge", Leads: []string{"h:1"}}, "--cluster is required"},
		{"agent tier", &AgentConfig{Cluster: "c", Tier: "mist", Leads: []string{"h:1"}}, `unknown tier "mist"`},
		{"agent leads", &AgentConfig{Cluster: "c", Tier: "fog"}, "--leads is required"},
		{"agent lead address", &AgentConfig{Cluster: "c", Tier: "fog", Leads: []string{"h"}}, `--leads: address "h"`},
		{"agent role", &AgentConfig{Cluster: "c", Tier: "fog", Leads: []string{"h:1"}, Role: "boss"}, `--role "boss"`},
		{"agent cluster name", &AgentConfig{Cluster: "Edge_1", Tier: "fog", Leads: []string{"h:1"}}, `--cluster "Edge_1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
	ok := &LeadConfig{ID: "b", Peers: peers}
	if err := ok.Validate(); err != nil || ok.First() {
		t.Errorf("b of a,b: %v, first %v", err, ok.First())
	}
}
