// Package spec is the Application spec users write: its types, how it is read
// from files, and how it is validated. Validation names the file and the field
// at fault, so a user sees one clear line.
package spec

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"qonnect.io/qonnect/internal/fleet"
)

// The Application's type.
const (
	APIVersion = "qonnect.io/v1alpha1"
	Kind       = "Application"
)

// Limits on what one application may carry.
const (
	MaxSpecBytes       = 1 << 20 // a spec with its manifests, as sent to a lead
	MaxComponents      = 64
	MaxObjectsPerComp  = 128
	MaxManifestFileLen = 512 << 10
)

// Application is the spec a user applies.
type Application struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       AppSpec  `json:"spec"`
}

// Metadata names an application. Namespace is where its namespaced objects go
// in every cluster; it defaults to the application's name.
type Metadata struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// AppSpec is the body of an application.
type AppSpec struct {
	QoS        QoS         `json:"qos"`
	Components []Component `json:"components"`
}

// QoS weights the three goals, each in [0,1]. All zero means balanced.
type QoS struct {
	Energy      float64 `json:"energy"`
	Cost        float64 `json:"cost"`
	Performance float64 `json:"performance"`
}

// Balanced reports whether no goal is weighted.
func (q QoS) Balanced() bool { return q.Energy == 0 && q.Cost == 0 && q.Performance == 0 }

// Component is one part of an application, placed on one cluster of its tier.
type Component struct {
	Name string     `json:"name"`
	Tier fleet.Tier `json:"tier"`
	// Manifests is a file (relative to the spec file) with the component's
	// objects. The plugin reads it into Resources before sending the spec,
	// so a lead only ever sees Resources.
	Manifests string `json:"manifests,omitempty"`
	// Resources are the component's Kubernetes objects, inline.
	Resources []Object `json:"resources,omitempty"`
}

// Object is one Kubernetes object as decoded JSON.
type Object = map[string]any

// NamespaceOf is the namespace the application's namespaced objects go to.
func (a *Application) NamespaceOf() string {
	if a.Metadata.Namespace != "" {
		return a.Metadata.Namespace
	}
	return a.Metadata.Name
}

// Component returns the component named name, or nil.
func (a *Application) Component(name string) *Component {
	for i := range a.Spec.Components {
		if a.Spec.Components[i].Name == name {
			return &a.Spec.Components[i]
		}
	}
	return nil
}

// placeholder is how a manifest refers to where another component runs:
// ${qonnect:COMPONENT} is replaced by the endpoint of that component's cluster.
var placeholder = regexp.MustCompile(`\$\{qonnect:([a-z0-9]([-a-z0-9]*[a-z0-9])?)\}`)

// Placeholder returns the text a manifest uses to refer to component's address.
func Placeholder(component string) string { return "${qonnect:" + component + "}" }

// References lists, sorted and unique, the components whose address the
// given text refers to.
func References(text string) []string {
	seen := map[string]bool{}
	for _, m := range placeholder.FindAllStringSubmatch(text, -1) {
		seen[m[1]] = true
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// FillAddresses replaces every placeholder in text with the endpoint in
// addrs; a placeholder with no address is left as it is.
func FillAddresses(text string, addrs map[string]string) string {
	return placeholder.ReplaceAllStringFunc(text, func(m string) string {
		name := strings.TrimSuffix(strings.TrimPrefix(m, "${qonnect:"), "}")
		if a, ok := addrs[name]; ok {
			return a
		}
		return m
	})
}

// FieldError is a validation failure: which file, which field, what is wrong.
type FieldError struct {
	File  string `json:"file,omitempty"`
	Field string `json:"field"`
	Msg   string `json:"message"`
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}
