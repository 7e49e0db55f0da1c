// Package fleet holds the facts qonnect knows about the clusters it manages:
// clusters, their nodes and the status of the components that run on them.
// These types are shared by the lead's knowledge base, the scheduler, the
// agent and the plugin; they carry no behaviour beyond small helpers.
package fleet

import (
	"fmt"
	"time"
)

// Tier is where in the compute continuum a cluster sits.
type Tier string

// The known tiers.
const (
	TierCloud Tier = "cloud"
	TierFog   Tier = "fog"
	TierEdge  Tier = "edge"
)

// Tiers lists the known tiers in their canonical order.
var Tiers = []Tier{TierCloud, TierFog, TierEdge}

// ParseTier returns the tier named s, or an error naming the known tiers.
func ParseTier(s string) (Tier, error) {
	for _, t := range Tiers {
		if string(t) == s {
			return t, nil
		}
	}
	return "", fmt.Errorf("unknown tier %q (want cloud, fog or edge)", s)
}

// Role says whether a cluster hosts a lead.
type Role string

// The cluster roles.
const (
	RoleLead   Role = "lead"
	RoleMember Role = "member"
)

// Node labels that carry QoS facts.
const (
	LabelEnergy    = "qonnect.io/energy"    // energy cost of running there; lower is better
	LabelPrice     = "qonnect.io/price"     // price per hour; lower is better
	LabelBandwidth = "qonnect.io/bandwidth" // bits per second; higher is better
	LabelLocation  = "qonnect.io/location"  // free text
)

// Labels qonnect puts on every object it applies.
const (
	LabelApp        = "qonnect.io/app"
	LabelComponent  = "qonnect.io/component"
	LabelGeneration = "qonnect.io/generation"
	LabelManagedBy  = "app.kubernetes.io/managed-by"
	ManagedByValue  = "qonnect"
	FieldManager    = "qonnect"
)

// Resources is an amount of the resources the scheduler fits components into.
type Resources struct {
	MilliCPU         int64 `json:"milliCPU"`
	MemoryBytes      int64 `json:"memoryBytes"`
	EphemeralStorage int64 `json:"ephemeralStorageBytes"`
	Pods             int64 `json:"pods"`
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	return Resources{r.MilliCPU + o.MilliCPU, r.MemoryBytes + o.MemoryBytes, r.EphemeralStorage + o.EphemeralStorage, r.Pods + o.Pods}
}

// Sub returns r - o.
func (r Resources) Sub(o Resources) Resources {
	return Resources{r.MilliCPU - o.MilliCPU, r.MemoryBytes - o.MemoryBytes, r.EphemeralStorage - o.EphemeralStorage, r.Pods - o.Pods}
}

// Scale returns r × n.
func (r Resources) Scale(n int64) Resources {
	return Resources{r.MilliCPU * n, r.MemoryBytes * n, r.EphemeralStorage * n, r.Pods * n}
}

// Fits reports whether want fits in r, and if not, the first resource short.
func (r Resources) Fits(want Resources) (bool, string) {
	switch {
	case want.MilliCPU > r.MilliCPU:
		return false, "cpu"
	case want.MemoryBytes > r.MemoryBytes:
		return false, "memory"
	case want.EphemeralStorage > r.EphemeralStorage:
		return false, "ephemeral-storage"
	case want.Pods > r.Pods:
		return false, "pods"
	}
	return true, ""
}

// Cluster is a cluster registered by its agent.
type Cluster struct {
	Name string `json:"name"`
	Tier Tier   `json:"tier"`
	Role Role   `json:"role"`
	// Endpoint is the address other components use to reach what runs
	// here (an ingress or load balancer address).
	Endpoint string            `json:"endpoint"`
	Labels   map[string]string `json:"labels,omitempty"`
	// Registered is when the cluster first registered; LastReport is the
	// last time its facts (not its liveness) changed.
	Registered time.Time `json:"registered"`
	LastReport time.Time `json:"lastReport"`
}

// Node is what an agent reports about one node of its cluster.
type Node struct {
	Cluster      string            `json:"cluster"`
	Name         string            `json:"name"`
	Architecture string            `json:"architecture,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	Allocatable  Resources         `json:"allocatable"`
	// Requested is the sum of the requests of the pods bound to the node.
	Requested      Resources `json:"requested"`
	Ready          bool      `json:"ready"`
	Unschedulable  bool      `json:"unschedulable,omitempty"`
	MemoryPressure bool      `json:"memoryPressure,omitempty"`
	DiskPressure   bool      `json:"diskPressure,omitempty"`
	PIDPressure    bool      `json:"pidPressure,omitempty"`
	// Reported is when the agent last sent this node's facts.
	Reported time.Time `json:"reported"`
}

// Free is what is left on the node for new pods.
func (n Node) Free() Resources { return n.Allocatable.Sub(n.Requested) }

// Phase is the state of one component on one cluster, as its agent sees it.
type Phase string

// The component phases.
const (
	PhasePending     Phase = "Pending"     // not placed yet, or placed and not applied yet
	PhaseProgressing Phase = "Progressing" // applied, not yet available
	PhaseHealthy     Phase = "Healthy"     // every workload available
	PhaseFailed      Phase = "Failed"      // could not be applied or will not become available
	PhaseRemoving    Phase = "Removing"    // being removed from this cluster
)

// ComponentStatus is what an agent reports about one component it runs.
type ComponentStatus struct {
	App       string `json:"app"`
	Component string `json:"component"`
	Cluster   string `json:"cluster"`
	// Generation is the application generation the agent applied.
	Generation int64     `json:"generation"`
	Phase      Phase     `json:"phase"`
	Message    string    `json:"message,omitempty"`
	Ready      int32     `json:"readyReplicas"`
	Desired    int32     `json:"desiredReplicas"`
	Since      time.Time `json:"since"`
	// Heartbeat is when the lead last heard about this component.
	Heartbeat time.Time `json:"heartbeat"`
}
