package plugin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/scheduler"
	"qonnect.io/qonnect/internal/spec"
	"qonnect.io/qonnect/plugin/fleetview"
)

// The kinds `-o json|yaml|name` print. They are the plugin's stable,
// machine-readable contract, shaped like Kubernetes objects (apiVersion,
// kind, metadata, spec, status) so kubectl habits and tools (jq, yq,
// -o name) carry over. Group qonnect.io makes -o name print
// application.qonnect.io/NAME, as apply does.
const (
	KindApplication = "Application"
	KindCluster     = "Cluster"
	KindNode        = "Node"
	KindLead        = "Lead"
	KindRaftStatus  = "LeadGroupStatus"
	KindExplanation = "Explanation"
	KindList        = "List"
)

type objectMeta struct {
	Name              string            `json:"name"`
	Namespace         string            `json:"namespace,omitempty"`
	Generation        int64             `json:"generation,omitempty"`
	CreationTimestamp *time.Time        `json:"creationTimestamp,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
}

type appObject struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Metadata   objectMeta   `json:"metadata"`
	Spec       spec.AppSpec `json:"spec"`
	Status     appStatus    `json:"status"`
}

type appStatus struct {
	// Phase is Healthy, Progressing, Migrating, Pending or Failed.
	Phase             string                  `json:"phase"`
	HealthyComponents int                     `json:"healthyComponents"`
	Updated           time.Time               `json:"updated"`
	Placements        []scheduler.Placement   `json:"placements"`
	Components        []fleet.ComponentStatus `json:"components"`
	Events            []apiv1.Event           `json:"events,omitempty"`
}

type clusterObject struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       struct {
		Tier     fleet.Tier `json:"tier"`
		Role     fleet.Role `json:"role"`
		Endpoint string     `json:"endpoint"`
	} `json:"spec"`
	Status struct {
		Health     string    `json:"health"`
		Alive      bool      `json:"alive"`
		Nodes      int       `json:"nodes"`
		ReadyNodes int       `json:"readyNodes"`
		LastSeen   time.Time `json:"lastSeen"`
		LastReport time.Time `json:"lastReport"`
	} `json:"status"`
}

type nodeObject struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       struct {
		Cluster       string          `json:"cluster"`
		Architecture  string          `json:"architecture,omitempty"`
		Allocatable   fleet.Resources `json:"allocatable"`
		Unschedulable bool            `json:"unschedulable,omitempty"`
	} `json:"spec"`
	Status struct {
		Conditions     string          `json:"conditions"`
		Ready          bool            `json:"ready"`
		Requested      fleet.Resources `json:"requested"`
		Free           fleet.Resources `json:"free"`
		MemoryPressure bool            `json:"memoryPressure,omitempty"`
		DiskPressure   bool            `json:"diskPressure,omitempty"`
		PIDPressure    bool            `json:"pidPressure,omitempty"`
		Reported       time.Time       `json:"reported"`
	} `json:"status"`
}

type leadObject struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       struct {
		RaftAddress string `json:"raftAddress"`
		APIAddress  string `json:"apiAddress,omitempty"`
		Suffrage    string `json:"suffrage"`
	} `json:"spec"`
	Status struct {
		State     string `json:"state"`
		Leader    bool   `json:"leader"`
		Reachable *bool  `json:"reachable,omitempty"`
	} `json:"status"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// AppObject is an application as -o json|yaml print it.
func AppObject(a *apiv1.App) *unstructured.Unstructured {
	sum := fleetview.AppOf(a)
	o := appObject{
		APIVersion: spec.APIVersion,
		Kind:       KindApplication,
		Metadata: objectMeta{
			Name:              a.Spec.Metadata.Name,
			Namespace:         a.Spec.NamespaceOf(),
			Generation:        a.Generation,
			CreationTimestamp: timePtr(a.Created),
		},
		Spec: a.Spec.Spec,
		Status: appStatus{
			Phase:             sum.Status,
			HealthyComponents: sum.Healthy,
			Updated:           a.Updated,
			Placements:        nonNil(a.Placements),
			Components:        nonNil(a.Statuses),
			Events:            a.Events,
		},
	}
	return mustUnstructured(o)
}

// ClusterObject is a cluster as -o json|yaml print it.
func ClusterObject(c fleetview.Cluster) *unstructured.Unstructured {
	var o clusterObject
	o.APIVersion, o.Kind = spec.APIVersion, KindCluster
	o.Metadata = objectMeta{Name: c.Name, CreationTimestamp: timePtr(c.Registered), Labels: c.Labels}
	o.Spec.Tier, o.Spec.Role, o.Spec.Endpoint = c.Tier, c.Role, c.Endpoint
	o.Status.Health, o.Status.Alive = c.Health(), c.Alive
	o.Status.Nodes, o.Status.ReadyNodes = c.Nodes, c.ReadyNodes
	o.Status.LastSeen, o.Status.LastReport = c.LastSeen, c.LastReport
	return mustUnstructured(o)
}

// NodeObject is a node as -o json|yaml print it.
func NodeObject(n fleet.Node) *unstructured.Unstructured {
	var o nodeObject
	o.APIVersion, o.Kind = spec.APIVersion, KindNode
	o.Metadata = objectMeta{Name: n.Name, Labels: n.Labels}
	o.Spec.Cluster, o.Spec.Architecture = n.Cluster, n.Architecture
	o.Spec.Allocatable, o.Spec.Unschedulable = n.Allocatable, n.Unschedulable
	o.Status.Conditions, o.Status.Ready = fleetview.NodeConditions(n), n.Ready
	o.Status.Requested, o.Status.Free = n.Requested, n.Free()
	o.Status.MemoryPressure, o.Status.DiskPressure, o.Status.PIDPressure = n.MemoryPressure, n.DiskPressure, n.PIDPressure
	o.Status.Reported = n.Reported
	return mustUnstructured(o)
}

// LeadObject is a member of the lead group as -o json|yaml print it.
func LeadObject(l fleetview.Lead) *unstructured.Unstructured {
	var o leadObject
	o.APIVersion, o.Kind = spec.APIVersion, KindLead
	o.Metadata = objectMeta{Name: l.ID}
	o.Spec.RaftAddress, o.Spec.APIAddress, o.Spec.Suffrage = l.RaftAddr, l.APIAddr, l.Suffrage
	o.Status.State, o.Status.Leader, o.Status.Reachable = l.State, l.Leader, l.Reachable
	return mustUnstructured(o)
}

// RaftStatusObject is `status -o json|yaml`: the lead group as one lead sees it.
func RaftStatusObject(st *apiv1.RaftStatus) *unstructured.Unstructured {
	u := mustUnstructured(st)
	u.SetAPIVersion(spec.APIVersion)
	u.SetKind(KindRaftStatus)
	return u
}

// ExplanationObject is `explain -o json|yaml` for one component.
func ExplanationObject(app string, p scheduler.Placement) *unstructured.Unstructured {
	obj := struct {
		APIVersion  string                 `json:"apiVersion"`
		Kind        string                 `json:"kind"`
		Metadata    objectMeta             `json:"metadata"`
		App         string                 `json:"app"`
		Component   string                 `json:"component"`
		Cluster     string                 `json:"cluster,omitempty"`
		Nodes       []string               `json:"nodes,omitempty"`
		Reason      string                 `json:"reason,omitempty"`
		Decided     time.Time              `json:"decided"`
		Explanation *scheduler.Explanation `json:"explanation"`
	}{spec.APIVersion, KindExplanation, objectMeta{Name: app + "." + p.Component}, app, p.Component, p.Cluster, p.Nodes, p.Reason, p.Decided, p.Explanation}
	return mustUnstructured(obj)
}

// listOf wraps items as kubectl prints several objects.
func listOf(items []*unstructured.Unstructured) *unstructured.UnstructuredList {
	l := &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "v1", "kind": KindList, "metadata": map[string]any{}}}
	for _, it := range items {
		l.Items = append(l.Items, *it)
	}
	return l
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// mustUnstructured converts a JSON-encodable value. A failure is a bug in
// the types above, not something a user could cause.
func mustUnstructured(v any) *unstructured.Unstructured {
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode %T: %v", v, err))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	// Numbers stay exact (indexes are uint64).
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		panic(fmt.Sprintf("decode %T: %v", v, err))
	}
	return &unstructured.Unstructured{Object: m}
}
