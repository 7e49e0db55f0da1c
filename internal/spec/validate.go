package spec

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"

	"k8s.io/apimachinery/pkg/util/validation"

	"qonnect.io/qonnect/internal/fleet"
)

// ValidateOptions are the operator's choices about what components may carry.
type ValidateOptions struct {
	// AllowKinds lets components carry kinds that are refused by default
	// because they could take over a cluster (see DeniedKinds).
	AllowKinds []string
}

// DeniedKinds are cluster-scoped kinds a component may not carry unless the
// operator allows them: each could take over the clusters it lands on.
var DeniedKinds = map[string]bool{
	"ClusterRole":                      true,
	"ClusterRoleBinding":               true,
	"CustomResourceDefinition":         true,
	"MutatingWebhookConfiguration":     true,
	"ValidatingWebhookConfiguration":   true,
	"ValidatingAdmissionPolicy":        true,
	"ValidatingAdmissionPolicyBinding": true,
	"MutatingAdmissionPolicy":          true,
	"MutatingAdmissionPolicyBinding":   true,
	"APIService":                       true,
	"PriorityClass":                    true,
	"PersistentVolume":                 true,
	"StorageClass":                     true,
	"Node":                             true,
	"CertificateSigningRequest":        true,
}

// Validate checks everything about an application a lead would store: its
// type, names, weights, tiers, components and their objects. It returns the
// first problem found as a *FieldError. Components must carry Resources
// (files are read by Load before this).
func Validate(a *Application, opts ValidateOptions) error {
	if a == nil {
		return fieldErr("", "no application given")
	}
	if a.APIVersion != APIVersion {
		return fieldErr("apiVersion", "must be %q, got %q", APIVersion, a.APIVersion)
	}
	if a.Kind != Kind {
		return fieldErr("kind", "must be %q, got %q", Kind, a.Kind)
	}
	if err := dnsLabel("metadata.name", a.Metadata.Name); err != nil {
		return err
	}
	if a.Metadata.Namespace != "" {
		if err := dnsLabel("metadata.namespace", a.Metadata.Namespace); err != nil {
			return err
		}
	}
	for _, w := range []struct {
		field string
		v     float64
	}{{"spec.qos.energy", a.Spec.QoS.Energy}, {"spec.qos.cost", a.Spec.QoS.Cost}, {"spec.qos.performance", a.Spec.QoS.Performance}} {
		if math.IsNaN(w.v) || math.IsInf(w.v, 0) || w.v < 0 || w.v > 1 {
			return fieldErr(w.field, "weight must be a number in [0,1], got %v", w.v)
		}
	}
	comps := a.Spec.Components
	if len(comps) == 0 {
		return fieldErr("spec.components", "at least one component is required")
	}
	if len(comps) > MaxComponents {
		return fieldErr("spec.components", "at most %d components are allowed, got %d", MaxComponents, len(comps))
	}
	names := map[string]bool{}
	for i := range comps {
		if err := dnsLabel(fmt.Sprintf("spec.components[%d].name", i), comps[i].Name); err != nil {
			return err
		}
		if names[comps[i].Name] {
			return fieldErr(fmt.Sprintf("spec.components[%d].name", i), "duplicate component %q", comps[i].Name)
		}
		names[comps[i].Name] = true
	}
	allowed := map[string]bool{}
	for _, k := range opts.AllowKinds {
		allowed[k] = true
	}
	for i := range comps {
		if err := validateComponent(a, i, names, allowed); err != nil {
			return err
		}
	}
	return nil
}

func validateComponent(a *Application, i int, names, allowed map[string]bool) error {
	c := &a.Spec.Components[i]
	path := fmt.Sprintf("spec.components[%d]", i)
	if _, err := fleet.ParseTier(string(c.Tier)); err != nil {
		return fieldErr(path+".tier", "%v", err)
	}
	if c.Manifests != "" && len(c.Resources) > 0 {
		// Load refuses this before reading files; a spec sent straight to a
		// lead's API must be refused the same way, not stored half-read.
		return fieldErr(path, "give either manifests or resources, not both")
	}
	if len(c.Resources) == 0 {
		if c.Manifests != "" {
			return fieldErr(path+".manifests", "file %q was not read into resources", c.Manifests)
		}
		return fieldErr(path, "component %q has no manifests and no resources", c.Name)
	}
	if len(c.Resources) > MaxObjectsPerComp {
		return fieldErr(path+".resources", "at most %d objects per component, got %d", MaxObjectsPerComp, len(c.Resources))
	}
	type key struct{ apiVersion, kind, name string }
	seen := map[key]bool{}
	for j, obj := range c.Resources {
		field := fmt.Sprintf("%s.resources[%d]", path, j)
		k, err := validateObject(a, field, obj, allowed)
		if err != nil {
			return err
		}
		if seen[k] {
			return fieldErr(field, "%s %q appears twice in component %q", k.kind, k.name, c.Name)
		}
		seen[k] = true
		raw, err := json.Marshal(obj)
		if err != nil {
			return fieldErr(field, "cannot encode object: %v", err)
		}
		for _, ref := range References(string(raw)) {
			if !names[ref] {
				return fieldErr(field, "refers to unknown component %q in %s", ref, Placeholder(ref))
			}
		}
	}
	return nil
}

func validateObject(a *Application, field string, obj Object, allowed map[string]bool) (k struct{ apiVersion, kind, name string }, err error) {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	if apiVersion == "" {
		return k, fieldErr(field+".apiVersion", "is required")
	}
	if kind == "" {
		return k, fieldErr(field+".kind", "is required")
	}
	md, _ := obj["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	if name == "" {
		return k, fieldErr(field+".metadata.name", "is required (%s)", kind)
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return k, fieldErr(field+".metadata.name", "%q is not a valid name: %s", name, errs[0])
	}
	if ns, ok := md["namespace"]; ok {
		s, _ := ns.(string)
		if s != "" && s != a.NamespaceOf() {
			return k, fieldErr(field+".metadata.namespace", "%s %q may not write to namespace %q (the application's namespace is %q)", kind, name, s, a.NamespaceOf())
		}
	}
	if kind == "Namespace" && name != a.NamespaceOf() && !allowed[kind] {
		return k, fieldErr(field+".kind", "Namespace %q is not the application's own namespace %q", name, a.NamespaceOf())
	}
	if DeniedKinds[kind] && !allowed[kind] {
		return k, fieldErr(field+".kind", "%s is not allowed in a component (it could take over a cluster); the operator may allow it", kind)
	}
	return struct{ apiVersion, kind, name string }{apiVersion, kind, name}, nil
}

func dnsLabel(field, v string) error {
	if v == "" {
		return fieldErr(field, "is required")
	}
	if errs := validation.IsDNS1123Label(v); len(errs) > 0 {
		return fieldErr(field, "%q is not a valid name: %s", v, errs[0])
	}
	return nil
}

// SortedComponentNames returns the application's component names in order.
func SortedComponentNames(a *Application) []string {
	out := make([]string, 0, len(a.Spec.Components))
	for _, c := range a.Spec.Components {
		out = append(out, c.Name)
	}
	sort.Strings(out)
	return out
}
