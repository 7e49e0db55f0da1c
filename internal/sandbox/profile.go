// Package sandbox brings up a local federation of real Kubernetes control
// planes (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
// with kwok simulating the nodes), one per cluster of a profile, and runs
// the qonnect leads and agents for it as local processes. Tests, the demo
// and people trying failures by hand use it.
package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"qonnect.io/qonnect/internal/fleet"
)

// Profile describes a federation: its clusters and their nodes.
type Profile struct {
	Name     string        `json:"name"`
	Clusters []ClusterSpec `json:"clusters"`
}

// ClusterSpec is one cluster of a profile.
type ClusterSpec struct {
	Name string     `json:"name"`
	Tier fleet.Tier `json:"tier"`
	// Role is lead for the clusters that host a lead (the Raft group).
	Role fleet.Role `json:"role"`
	// Flavour is informative: energy, cost or performance in the paper profile.
	Flavour string     `json:"flavour,omitempty"`
	Nodes   []NodeSpec `json:"nodes"`
}

// NodeSpec is a group of identical nodes.
type NodeSpec struct {
	// Name of the node; with Count > 1, nodes are NAME-0, NAME-1, ...
	Name  string `json:"name"`
	Count int    `json:"count,omitempty"`
	CPU   string `json:"cpu"`
	// Memory and EphemeralStorage are Kubernetes quantities ("7.2G").
	Memory           string `json:"memory"`
	EphemeralStorage string `json:"ephemeralStorage,omitempty"`
	Pods             int    `json:"pods,omitempty"`
	Architecture     string `json:"architecture,omitempty"`
	// Labels are added to the node; the QoS labels are set from the fields below.
	Labels    map[string]string `json:"labels,omitempty"`
	Energy    string            `json:"energy,omitempty"`
	Price     string            `json:"price,omitempty"`
	Bandwidth string            `json:"bandwidth,omitempty"`
	Location  string            `json:"location,omitempty"`
}

// Node profiles of the paper's testbed.
var (
	energyNode = NodeSpec{CPU: "6", Memory: "7.2G", Bandwidth: "52500000000", Energy: "0.0024042", Price: "16.3884"}
	costNode   = NodeSpec{CPU: "6", Memory: "7.2G", Bandwidth: "5000000000", Energy: "0.0025689", Price: "0.0042"}
	perfNode   = NodeSpec{CPU: "10", Memory: "12.5G", Bandwidth: "100000000000", Energy: "0.0027335", Price: "32.7726"}
)

// PaperProfile is the paper's testbed: 9 clusters, 3 per tier, in each tier
// one energy-, one cost- and one performance-flavoured cluster of 3 nodes;
// the cloud clusters host the leads.
func PaperProfile() *Profile {
	p := &Profile{Name: "paper"}
	for _, tier := range fleet.Tiers {
		role := fleet.RoleMember
		if tier == fleet.TierCloud {
			role = fleet.RoleLead
		}
		for _, f := range []struct {
			flavour, short string
			node           NodeSpec
		}{{"energy", "energy", energyNode}, {"cost", "cost", costNode}, {"performance", "perf", perfNode}} {
			name := string(tier) + "-" + f.short
			n := f.node
			n.Name, n.Count = name, 3
			n.EphemeralStorage, n.Pods, n.Architecture = "100G", 110, "amd64"
			n.Location = name
			p.Clusters = append(p.Clusters, ClusterSpec{Name: name, Tier: tier, Role: role, Flavour: f.flavour, Nodes: []NodeSpec{n}})
		}
	}
	return p
}

// LoadProfile reads "paper" or a YAML profile file, and validates it.
func LoadProfile(nameOrPath string) (*Profile, error) {
	if nameOrPath == "" || nameOrPath == "paper" {
		return PaperProfile(), nil
	}
	data, err := os.ReadFile(nameOrPath)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("profile %s: not valid YAML: %v", nameOrPath, err)
	}
	var p Profile
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return nil, fmt.Errorf("profile %s: %s: cannot be a %s (want %s; quote it in YAML)", nameOrPath, ute.Field, ute.Value, ute.Type)
		}
		return nil, fmt.Errorf("profile %s: %s", nameOrPath, strings.TrimPrefix(err.Error(), "json: "))
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("profile %s: %w", nameOrPath, err)
	}
	return &p, nil
}

// Validate checks the profile and returns one error naming the field at fault.
func (p *Profile) Validate() error {
	if len(p.Clusters) == 0 {
		return errors.New("clusters: at least one cluster is required")
	}
	names := map[string]bool{}
	leads := 0
	for i, c := range p.Clusters {
		f := fmt.Sprintf("clusters[%d]", i)
		if errs := validation.IsDNS1123Label(c.Name); len(errs) > 0 {
			return fmt.Errorf("%s.name: %q is not a valid name: %s", f, c.Name, errs[0])
		}
		if len(c.Name) > 40 {
			return fmt.Errorf("%s.name: %q is longer than 40 characters", f, c.Name)
		}
		if names[c.Name] {
			return fmt.Errorf("%s.name: duplicate cluster name %q", f, c.Name)
		}
		names[c.Name] = true
		if _, err := fleet.ParseTier(string(c.Tier)); err != nil {
			return fmt.Errorf("%s.tier: %v", f, err)
		}
		switch c.Role {
		case fleet.RoleLead:
			leads++
		case fleet.RoleMember, "":
		default:
			return fmt.Errorf("%s.role: unknown role %q (want lead or member)", f, c.Role)
		}
		if len(c.Nodes) == 0 {
			return fmt.Errorf("%s.nodes: cluster %q has no nodes", f, c.Name)
		}
		nodeNames := map[string]bool{}
		for j, n := range c.Nodes {
			if err := n.validate(fmt.Sprintf("%s.nodes[%d]", f, j), nodeNames); err != nil {
				return err
			}
		}
	}
	if leads == 0 {
		return errors.New("clusters: no cluster has role lead; at least one must host a lead")
	}
	return nil
}

func (n NodeSpec) validate(f string, seen map[string]bool) error {
	if errs := validation.IsDNS1123Subdomain(n.Name); len(errs) > 0 {
		return fmt.Errorf("%s.name: %q is not a valid node name: %s", f, n.Name, errs[0])
	}
	if n.Count < 0 || n.Count > 1000 {
		return fmt.Errorf("%s.count: %d is not in [0,1000]", f, n.Count)
	}
	for _, name := range n.names() {
		if seen[name] {
			return fmt.Errorf("%s.name: duplicate node name %q", f, name)
		}
		seen[name] = true
	}
	for _, q := range []struct{ field, v string }{{"cpu", n.CPU}, {"memory", n.Memory}, {"ephemeralStorage", n.EphemeralStorage}} {
		if q.v == "" && q.field == "ephemeralStorage" {
			continue
		}
		if _, err := resource.ParseQuantity(q.v); err != nil {
			return fmt.Errorf("%s.%s: %q is not a quantity", f, q.field, q.v)
		}
	}
	return nil
}

// names lists the node names a NodeSpec makes.
func (n NodeSpec) names() []string {
	if n.Count <= 1 {
		return []string{n.Name}
	}
	out := make([]string, n.Count)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", n.Name, i)
	}
	return out
}

// Leads returns the clusters that host a lead, in profile order.
func (p *Profile) Leads() []ClusterSpec {
	var out []ClusterSpec
	for _, c := range p.Clusters {
		if c.Role == fleet.RoleLead {
			out = append(out, c)
		}
	}
	return out
}
