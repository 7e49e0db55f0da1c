package agent

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/spec"
)

// LabelHostname is the node label a placement pins pods with.
const LabelHostname = "kubernetes.io/hostname"

// pin is the node requirement a placement adds to every pod template: pods
// may run only on the placement's nodes. It names them by their hostname
// label when every one of them has it (the usual case and what users see
// in kubectl), and by metadata.name otherwise, since a node without the
// label would never match a hostname requirement.
type pin struct {
	byName bool // matchFields on metadata.name instead of the hostname label
	values []string
}

// requirement is the pin as an unstructured NodeSelectorRequirement.
func (p pin) requirement() map[string]any {
	key := LabelHostname
	if p.byName {
		key = "metadata.name"
	}
	vals := make([]any, len(p.values))
	for i, v := range p.values {
		vals[i] = v
	}
	return map[string]any{"key": key, "operator": "In", "values": vals}
}

// listField is where the requirement goes in a NodeSelectorTerm.
func (p pin) listField() string {
	if p.byName {
		return "matchFields"
	}
	return "matchExpressions"
}

// makePin builds the pin for the placement's node names; hostname returns
// a node's hostname label, ok=false when the node or its label is unknown.
// Nil means no pinning (the placement named no nodes).
func makePin(nodes []string, hostname func(node string) (string, bool)) *pin {
	if len(nodes) == 0 {
		return nil
	}
	names := slices.Clone(nodes)
	slices.Sort(names)
	names = slices.Compact(names)
	hosts := make([]string, 0, len(names))
	for _, n := range names {
		h, ok := hostname(n)
		if !ok {
			return &pin{byName: true, values: names}
		}
		hosts = append(hosts, h)
	}
	slices.Sort(hosts)
	return &pin{values: slices.Compact(hosts)}
}

// ManifestError is an object of an assignment that cannot be applied as it
// is written, whatever the cluster says.
type ManifestError struct {
	Index int    // position in the component's resources
	Ref   string // Kind/name, when known
	Msg   string
}

func (e *ManifestError) Error() string {
	if e.Ref != "" {
		return fmt.Sprintf("resources[%d] %s: %s", e.Index, e.Ref, e.Msg)
	}
	return fmt.Sprintf("resources[%d]: %s", e.Index, e.Msg)
}

// prepareObject turns the i-th object of an assignment into what is
// applied: addresses filled, server-owned metadata dropped, qonnect labels
// set, pod templates pinned to the placement's nodes. It does not know
// the object's scope; placeNamespace does that once the RESTMapper has
// said. raw is not modified.
func prepareObject(a *apiv1.Assignment, i int, raw spec.Object, p *pin) (*unstructured.Unstructured, error) {
	obj, err := fillAddresses(raw, a.Addresses)
	if err != nil {
		return nil, &ManifestError{Index: i, Msg: err.Error()}
	}
	u := &unstructured.Unstructured{Object: obj}
	ref := u.GetKind() + "/" + u.GetName()
	switch {
	case u.GetAPIVersion() == "":
		return nil, &ManifestError{Index: i, Ref: ref, Msg: "apiVersion is missing"}
	case u.GetKind() == "":
		return nil, &ManifestError{Index: i, Ref: ref, Msg: "kind is missing"}
	case u.GetName() == "":
		if u.GetGenerateName() != "" {
			// A generated name would make a new object on every apply.
			return nil, &ManifestError{Index: i, Ref: ref, Msg: "metadata.generateName is not supported; give metadata.name"}
		}
		return nil, &ManifestError{Index: i, Ref: ref, Msg: "metadata.name is missing"}
	}
	if _, err := schema.ParseGroupVersion(u.GetAPIVersion()); err != nil {
		return nil, &ManifestError{Index: i, Ref: ref, Msg: err.Error()}
	}
	if _, ok := obj["metadata"].(map[string]any); !ok {
		return nil, &ManifestError{Index: i, Ref: ref, Msg: "metadata is not an object"}
	}

	// Fields the server owns: server-side apply rejects managedFields and
	// treats resourceVersion as a precondition; owner references name UIDs
	// that exist only in the cluster the manifest was taken from.
	for _, f := range []string{"resourceVersion", "uid", "creationTimestamp", "deletionTimestamp",
		"deletionGracePeriodSeconds", "generation", "managedFields", "selfLink", "ownerReferences"} {
		unstructured.RemoveNestedField(obj, "metadata", f)
	}
	delete(obj, "status")

	if err := setLabels(obj, ownerLabels(a, true), "metadata"); err != nil {
		return nil, &ManifestError{Index: i, Ref: ref, Msg: err.Error()}
	}
	gvk := u.GroupVersionKind()
	for _, path := range podTemplatePaths(gvk) {
		if err := pinTemplate(obj, path, a, p); err != nil {
			return nil, &ManifestError{Index: i, Ref: ref, Msg: err.Error()}
		}
	}
	if gvk.Group == "batch" && gvk.Kind == "CronJob" {
		// Jobs a CronJob makes carry the labels too, so they are recognised
		// as this component's (and, being owned, never pruned by hand).
		if err := setLabels(obj, ownerLabels(a, false), "spec", "jobTemplate", "metadata"); err != nil {
			return nil, &ManifestError{Index: i, Ref: ref, Msg: err.Error()}
		}
	}
	return u, nil
}

// ownerLabels are the labels that mark an object as qonnect's. The
// generation is left off pod templates: changing it there would roll every
// workload of the application whenever any one component changes.
func ownerLabels(a *apiv1.Assignment, withGeneration bool) map[string]string {
	l := map[string]string{
		fleet.LabelApp:       a.App,
		fleet.LabelComponent: a.Component,
		fleet.LabelManagedBy: fleet.ManagedByValue,
	}
	if withGeneration {
		l[fleet.LabelGeneration] = strconv.FormatInt(a.Generation, 10)
	}
	return l
}

// podTemplatePaths returns where a workload kind keeps its pod template:
// the path of the object holding metadata and spec (empty for a Pod, whose
// own metadata and spec are the template).
func podTemplatePaths(gvk schema.GroupVersionKind) [][]string {
	switch {
	case gvk.Group == "" && gvk.Kind == "Pod":
		return [][]string{{}}
	case gvk.Group == "" && gvk.Kind == "ReplicationController",
		gvk.Group == "apps" && slices.Contains([]string{"Deployment", "StatefulSet", "ReplicaSet", "DaemonSet"}, gvk.Kind),
		gvk.Group == "batch" && gvk.Kind == "Job":
		return [][]string{{"spec", "template"}}
	case gvk.Group == "batch" && gvk.Kind == "CronJob":
		return [][]string{{"spec", "jobTemplate", "spec", "template"}}
	}
	return nil
}

// pinTemplate labels the pod template at path and adds the pin to its
// required node affinity.
func pinTemplate(obj map[string]any, path []string, a *apiv1.Assignment, p *pin) error {
	tmpl := obj
	if len(path) > 0 {
		t, found, err := unstructured.NestedFieldNoCopy(obj, path...)
		if err != nil {
			return err
		}
		if !found || t == nil {
			return fmt.Errorf("%s is missing", strings.Join(path, "."))
		}
		var ok bool
		if tmpl, ok = t.(map[string]any); !ok {
			return fmt.Errorf("%s is not an object", strings.Join(path, "."))
		}
	}
	where := strings.Join(append(slices.Clone(path), "spec"), ".")
	if len(path) > 0 {
		if err := setLabels(tmpl, ownerLabels(a, false), "metadata"); err != nil {
			return fmt.Errorf("%s.metadata: %w", strings.Join(path, "."), err)
		}
	}
	if p == nil {
		return nil
	}
	podSpec, ok := tmpl["spec"].(map[string]any)
	if !ok {
		return fmt.Errorf("%s is missing or not an object", where)
	}
	if err := addNodeAffinity(podSpec, p); err != nil {
		return fmt.Errorf("%s.affinity: %w", where, err)
	}
	return nil
}

// addNodeAffinity adds the pin to a pod spec's required node affinity,
// keeping whatever the user wrote. Terms are ORed by the scheduler, so the
// pin is ANDed into each existing term; with no term, it becomes the only
// one. Preferred terms, pod (anti-)affinity and nodeSelector are left as
// they are: they narrow the choice within the pinned nodes.
func addNodeAffinity(podSpec map[string]any, p *pin) error {
	required, err := ensureMap(podSpec, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution")
	if err != nil {
		return err
	}
	terms, _ := required["nodeSelectorTerms"].([]any)
	if v, ok := required["nodeSelectorTerms"]; ok && v != nil && terms == nil {
		return fmt.Errorf("nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms is not a list")
	}
	if len(terms) == 0 {
		required["nodeSelectorTerms"] = []any{map[string]any{p.listField(): []any{p.requirement()}}}
		return nil
	}
	for i, t := range terms {
		term, ok := t.(map[string]any)
		if !ok {
			return fmt.Errorf("nodeSelectorTerms[%d] is not an object", i)
		}
		list, _ := term[p.listField()].([]any)
		if v, ok := term[p.listField()]; ok && v != nil && list == nil {
			return fmt.Errorf("nodeSelectorTerms[%d].%s is not a list", i, p.listField())
		}
		// A fresh slice: the user's list may be shared with the raw manifest.
		term[p.listField()] = append(slices.Clone(list), p.requirement())
	}
	return nil
}

// ensureMap walks down obj along path, creating empty objects where
// nothing is, and returns the object at the end.
func ensureMap(obj map[string]any, path ...string) (map[string]any, error) {
	cur := obj
	for i, k := range path {
		v, ok := cur[k]
		if !ok || v == nil {
			m := map[string]any{}
			cur[k] = m
			cur = m
			continue
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s is not an object", strings.Join(path[:i+1], "."))
		}
		cur = m
	}
	return cur, nil
}

// setLabels merges labels into the labels map of the object at path; ours
// win over the user's, since they are how qonnect finds its objects.
func setLabels(obj map[string]any, labels map[string]string, path ...string) error {
	m, err := ensureMap(obj, append(slices.Clone(path), "labels")...)
	if err != nil {
		return err
	}
	for k, v := range labels {
		m[k] = v
	}
	return nil
}

// fillAddresses returns a deep copy of raw with ${qonnect:NAME}
// placeholders replaced by the placement's addresses. It works on the JSON
// text, so placeholders anywhere (env values, URLs in config maps, ingress
// hosts) are filled; a placeholder can only sit inside a JSON string there,
// so each address is JSON-escaped to keep the document valid whatever it
// holds.
func fillAddresses(raw spec.Object, addrs map[string]string) (map[string]any, error) {
	data, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("encode object: %w", err)
	}
	if len(addrs) > 0 {
		esc := make(map[string]string, len(addrs))
		for k, v := range addrs {
			q, _ := json.Marshal(v) // a string always encodes
			esc[k] = string(q[1 : len(q)-1])
		}
		data = []byte(spec.FillAddresses(string(data), esc))
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("object is not valid after filling addresses: %w", err)
	}
	if out == nil {
		return nil, fmt.Errorf("object is empty")
	}
	return out, nil
}

// ScopeError is an object refused because of where it would be written.
type ScopeError struct{ Msg string }

func (e *ScopeError) Error() string { return e.Msg }

// placeNamespace puts an object in the assignment's namespace, or refuses
// it. A namespaced object may name no namespace or that one. A
// cluster-scoped object is refused unless its kind is allowed by the
// operator; the application's own Namespace is allowed and is never given
// the component labels, so removing one component never deletes the
// namespace the others live in.
func placeNamespace(u *unstructured.Unstructured, namespaced bool, ns string, allowClusterScoped func(schema.GroupKind) bool) error {
	ref := u.GetKind() + "/" + u.GetName()
	if namespaced {
		if got := u.GetNamespace(); got != "" && got != ns {
			return &ScopeError{Msg: fmt.Sprintf("%s asks for namespace %q, outside the application's namespace %q", ref, got, ns)}
		}
		u.SetNamespace(ns)
		return nil
	}
	u.SetNamespace("")
	gk := u.GroupVersionKind().GroupKind()
	if gk == (schema.GroupKind{Kind: "Namespace"}) {
		if u.GetName() != ns {
			return &ScopeError{Msg: fmt.Sprintf("%s is another namespace than the application's %q", ref, ns)}
		}
		l := u.GetLabels()
		delete(l, fleet.LabelApp)
		delete(l, fleet.LabelComponent)
		delete(l, fleet.LabelGeneration)
		u.SetLabels(l)
		return nil
	}
	if allowClusterScoped == nil || !allowClusterScoped(gk) {
		return &ScopeError{Msg: fmt.Sprintf("%s is cluster-scoped, outside the application's namespace %q (the agent's --allow-cluster-scoped does not list %s)", ref, ns, gk.String())}
	}
	return nil
}
