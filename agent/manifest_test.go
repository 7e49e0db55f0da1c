package agent

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/spec"
)

// obj parses a YAML manifest.
func obj(t testing.TB, y string) spec.Object {
	t.Helper()
	var o spec.Object
	if err := yaml.Unmarshal([]byte(y), &o); err != nil {
		t.Fatalf("bad test manifest: %v", err)
	}
	return o
}

func fieldOf(t *testing.T, u *unstructured.Unstructured, path ...string) any {
	t.Helper()
	v, _, err := unstructured.NestedFieldNoCopy(u.Object, path...)
	if err != nil {
		t.Fatalf("%v: %v", path, err)
	}
	return v
}

// asJSON renders a value for comparison with a JSON literal.
func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func compactJSON(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad JSON literal %s: %v", s, err)
	}
	return asJSON(t, v)
}

var testAssignment = apiv1.Assignment{App: "shop", Component: "web", Namespace: "shop", Generation: 7}

func TestAffinityMerge(t *testing.T) {
	hostPin := &pin{values: []string{"n1", "n2"}}
	namePin := &pin{byName: true, values: []string{"n1"}}
	hostReq := `{"key":"kubernetes.io/hostname","operator":"In","values":["n1","n2"]}`
	tests := []struct {
		name     string
		manifest string
		pin      *pin
		path     []string // to the pod spec
		want     string   // JSON of spec.affinity
	}{
		{
			name: "no affinity: the pin is the only term",
			manifest: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers: [{name: c, image: nginx}]`,
			pin:  hostPin,
			path: []string{"spec", "template", "spec"},
			want: `{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[` + hostReq + `]}]}}}`,
		},
		{
			name: "user's required terms: the pin is ANDed into each",
			manifest: `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  template:
    spec:
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions: [{key: disk, operator: In, values: [ssd]}]
            - matchFields: [{key: metadata.name, operator: NotIn, values: [n9]}]
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 10
            preference: {matchExpressions: [{key: zone, operator: In, values: [a]}]}
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - topologyKey: kubernetes.io/hostname
            labelSelector: {matchLabels: {app: db}}
      containers: [{name: c, image: pg}]`,
			pin:  hostPin,
			path: []string{"spec", "template", "spec"},
			want: `{"nodeAffinity":{
				"preferredDuringSchedulingIgnoredDuringExecution":[{"preference":{"matchExpressions":[{"key":"zone","operator":"In","values":["a"]}]},"weight":10}],
				"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[
					{"matchExpressions":[{"key":"disk","operator":"In","values":["ssd"]},` + hostReq + `]},
					{"matchExpressions":[` + hostReq + `],"matchFields":[{"key":"metadata.name","operator":"NotIn","values":["n9"]}]}]}},
				"podAntiAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":[{"labelSelector":{"matchLabels":{"app":"db"}},"topologyKey":"kubernetes.io/hostname"}]}}`,
		},
		{
			name: "only preferred terms: kept, pin added as required",
			manifest: `
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      affinity:
        nodeAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 1
            preference: {matchExpressions: [{key: gpu, operator: Exists}]}
      containers: [{name: c, image: busybox}]`,
			pin:  hostPin,
			path: []string{"spec", "template", "spec"},
			want: `{"nodeAffinity":{
				"preferredDuringSchedulingIgnoredDuringExecution":[{"preference":{"matchExpressions":[{"key":"gpu","operator":"Exists"}]},"weight":1}],
				"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[` + hostReq + `]}]}}}`,
		},
		{
			name: "nodes without hostname labels: pinned by name",
			manifest: `
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions: [{key: arch, operator: In, values: [arm64]}]
  containers: [{name: c, image: busybox}]`,
			pin:  namePin,
			path: []string{"spec"},
			want: `{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[
				{"matchExpressions":[{"key":"arch","operator":"In","values":["arm64"]}],"matchFields":[{"key":"metadata.name","operator":"In","values":["n1"]}]}]}}}`,
		},
		{
			name: "cron job template",
			manifest: `
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 0 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: c, image: busybox}]`,
			pin:  hostPin,
			path: []string{"spec", "jobTemplate", "spec", "template", "spec"},
			want: `{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[` + hostReq + `]}]}}}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := obj(t, tc.manifest)
			before := asJSON(t, raw)
			u, err := prepareObject(&testAssignment, 0, raw, tc.pin)
			if err != nil {
				t.Fatal(err)
			}
			got := asJSON(t, fieldOf(t, u, append(tc.path, "affinity")...))
			if want := compactJSON(t, tc.want); got != want {
				t.Errorf("affinity\n got %s\nwant %s", got, want)
			}
			if asJSON(t, raw) != before {
				t.Error("prepareObject changed the assignment's object")
			}
			// Preparing again from the same manifest gives the same object:
			// re-applies never stack pins.
			u2, _ := prepareObject(&testAssignment, 0, raw, tc.pin)
			if !reflect.DeepEqual(u.Object, u2.Object) {
				t.Error("a second prepare differs from the first")
			}
		})
	}
}

func TestNoPinWithoutNodes(t *testing.T) {
	u, err := prepareObject(&testAssignment, 0, obj(t, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec: {template: {spec: {containers: [{name: c, image: nginx}]}}}`), makePin(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if a := fieldOf(t, u, "spec", "template", "spec", "affinity"); a != nil {
		t.Errorf("affinity added without nodes: %v", a)
	}
}

func TestMakePin(t *testing.T) {
	hosts := map[string]string{"n1": "host-1", "n2": "host-2"}
	lookup := func(n string) (string, bool) { h, ok := hosts[n]; return h, ok }
	if got := makePin([]string{"n2", "n1", "n2"}, lookup); got.byName || !reflect.DeepEqual(got.values, []string{"host-1", "host-2"}) {
		t.Errorf("all labelled: got %+v", got)
	}
	if got := makePin([]string{"n1", "n3"}, lookup); !got.byName || !reflect.DeepEqual(got.values, []string{"n1", "n3"}) {
		t.Errorf("one unlabelled: got %+v", got)
	}
}

func TestLabels(t *testing.T) {
	u, err := prepareObject(&testAssignment, 0, obj(t, `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {tier: front, qonnect.io/app: spoofed}
  resourceVersion: "42"
  uid: abc
  ownerReferences: [{apiVersion: v1, kind: ConfigMap, name: x, uid: y}]
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: nginx}]}
status: {replicas: 3}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"tier": "front", fleet.LabelApp: "shop", fleet.LabelComponent: "web",
		fleet.LabelGeneration: "7", fleet.LabelManagedBy: fleet.ManagedByValue,
	}
	if got := u.GetLabels(); !reflect.DeepEqual(got, want) {
		t.Errorf("labels = %v, want %v", got, want)
	}
	tmpl, _, _ := unstructured.NestedStringMap(u.Object, "spec", "template", "metadata", "labels")
	wantTmpl := map[string]string{"app": "web", fleet.LabelApp: "shop", fleet.LabelComponent: "web", fleet.LabelManagedBy: fleet.ManagedByValue}
	if !reflect.DeepEqual(tmpl, wantTmpl) {
		t.Errorf("template labels = %v, want %v (no generation: it would roll the pods)", tmpl, wantTmpl)
	}
	if u.GetResourceVersion() != "" || u.GetUID() != "" || len(u.GetOwnerReferences()) != 0 || u.Object["status"] != nil {
		t.Errorf("server-owned fields kept: %v", u.Object)
	}
}

func TestFillAddresses(t *testing.T) {
	a := testAssignment
	a.Addresses = map[string]string{"reviews": "10.0.0.7:9080", "weird": `a"b\c`}
	u, err := prepareObject(&a, 0, obj(t, `
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data:
  url: http://${qonnect:reviews}/api
  odd: ${qonnect:weird}
  unknown: ${qonnect:ratings}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	data, _, _ := unstructured.NestedStringMap(u.Object, "data")
	want := map[string]string{"url": "http://10.0.0.7:9080/api", "odd": `a"b\c`, "unknown": "${qonnect:ratings}"}
	if !reflect.DeepEqual(data, want) {
		t.Errorf("data = %v, want %v", data, want)
	}
}

func TestPrepareRejects(t *testing.T) {
	tests := []struct{ name, manifest, want string }{
		{"no kind", `{apiVersion: v1, metadata: {name: x}}`, "kind is missing"},
		{"no apiVersion", `{kind: ConfigMap, metadata: {name: x}}`, "apiVersion is missing"},
		{"no name", `{apiVersion: v1, kind: ConfigMap, metadata: {}}`, "metadata.name is missing"},
		{"generateName", `{apiVersion: v1, kind: ConfigMap, metadata: {generateName: x-}}`, "generateName is not supported"},
		{"template not an object", `{apiVersion: apps/v1, kind: Deployment, metadata: {name: x}, spec: {template: 3}}`, "spec.template is not an object"},
		{"affinity not an object", `{apiVersion: v1, kind: Pod, metadata: {name: x}, spec: {affinity: [1]}}`, "affinity is not an object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := prepareObject(&testAssignment, 3, obj(t, tc.manifest), &pin{values: []string{"n"}})
			var me *ManifestError
			if !errors.As(err, &me) || !strings.Contains(err.Error(), tc.want) || me.Index != 3 {
				t.Errorf("err = %v, want a ManifestError at 3 containing %q", err, tc.want)
			}
		})
	}
}

func TestPlaceNamespace(t *testing.T) {
	allowCR := func(gk schema.GroupKind) bool { return gk.Kind == "ClusterRole" }
	tests := []struct {
		name       string
		manifest   string
		namespaced bool
		allow      func(schema.GroupKind) bool
		wantErr    string
		wantNS     string
	}{
		{"namespaced, none given", `{apiVersion: v1, kind: ConfigMap, metadata: {name: x}}`, true, nil, "", "shop"},
		{"namespaced, its own", `{apiVersion: v1, kind: ConfigMap, metadata: {name: x, namespace: shop}}`, true, nil, "", "shop"},
		{"namespaced, another", `{apiVersion: v1, kind: Secret, metadata: {name: x, namespace: kube-system}}`, true, nil, `asks for namespace "kube-system", outside the application's namespace "shop"`, ""},
		{"cluster-scoped, not allowed", `{apiVersion: rbac.authorization.k8s.io/v1, kind: ClusterRole, metadata: {name: admin2}}`, false, nil, "is cluster-scoped", ""},
		{"cluster-scoped, allowed", `{apiVersion: rbac.authorization.k8s.io/v1, kind: ClusterRole, metadata: {name: r}}`, false, allowCR, "", ""},
		{"its own namespace", `{apiVersion: v1, kind: Namespace, metadata: {name: shop}}`, false, nil, "", ""},
		{"another namespace", `{apiVersion: v1, kind: Namespace, metadata: {name: kube-system}}`, false, nil, "another namespace", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := prepareObject(&testAssignment, 0, obj(t, tc.manifest), nil)
			if err != nil {
				t.Fatal(err)
			}
			err = placeNamespace(u, tc.namespaced, "shop", tc.allow)
			if tc.wantErr != "" {
				var se *ScopeError
				if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want a ScopeError containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.GetNamespace() != tc.wantNS {
				t.Errorf("namespace = %q, want %q", u.GetNamespace(), tc.wantNS)
			}
			if u.GetKind() == "Namespace" {
				if _, ok := u.GetLabels()[fleet.LabelComponent]; ok {
					t.Error("the application's Namespace carries component labels: removing the component would delete it")
				}
			}
		})
	}
}
