package scheduler

import (
	"time"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/spec"
)

// Placement is where one component of an application runs, as decided by
// the scheduler and stored in the knowledge base.
type Placement struct {
	App       string     `json:"app"`
	Component string     `json:"component"`
	Tier      fleet.Tier `json:"tier"`
	// Cluster is where the component runs; empty while it is Pending.
	Cluster string   `json:"cluster,omitempty"`
	Nodes   []string `json:"nodes,omitempty"`
	// Generation is the application generation this placement serves.
	Generation int64 `json:"generation"`
	// From is the cluster a migrating component is leaving. Its workloads
	// stay there until Cluster reports the component Healthy
	// (make-before-break); then the lead clears From.
	From      string   `json:"from,omitempty"`
	FromNodes []string `json:"fromNodes,omitempty"`
	// Reason says why the component is pending, or why it last moved.
	Reason string `json:"reason,omitempty"`
	// Addresses maps each other component of the application to the
	// endpoint of the cluster that runs it, for ${qonnect:NAME} in manifests.
	Addresses   map[string]string `json:"addresses,omitempty"`
	Explanation *Explanation      `json:"explanation,omitempty"`
	Decided     time.Time         `json:"decided"`
}

// Pending reports whether the component has no cluster.
func (p *Placement) Pending() bool { return p.Cluster == "" }

// Criterion names, in the order explanations list them.
const (
	CriterionEnergy    = "energy"
	CriterionPrice     = "price"
	CriterionCPU       = "cpu"
	CriterionMemory    = "memory"
	CriterionBandwidth = "bandwidth"
	CriterionStorage   = "storage"
)

// Explanation is why a component was placed where it was: data a person
// can read through `kubectl qonnect explain`.
type Explanation struct {
	Component    string            `json:"component"`
	Tier         fleet.Tier        `json:"tier"`
	Weights      spec.QoS          `json:"weights"`
	Balanced     bool              `json:"balanced,omitempty"`
	Requirements spec.Requirements `json:"requirements"`
	Criteria     []string          `json:"criteria"`
	// Nodes are the candidate nodes that passed the filters, best first.
	Nodes []NodeScore `json:"nodes"`
	// Clusters are every cluster of the tier: chosen, lost or filtered.
	Clusters []ClusterScore `json:"clusters"`
	Chosen   string         `json:"chosen,omitempty"`
	// Summary is one sentence: "kept edge-energy: new best edge-cost wins by 2% < margin 10%".
	Summary string `json:"summary"`
}

// NodeScore is one candidate node's values, Borda points and score.
type NodeScore struct {
	Cluster string `json:"cluster"`
	Node    string `json:"node"`
	// Values are the raw facts per criterion; a criterion missing here had
	// a missing or malformed label (see Problems) and ranked worst.
	Values map[string]float64 `json:"values"`
	// Ranks are the Borda points per criterion (higher is better).
	Ranks map[string]float64 `json:"ranks"`
	// Score is the weighted score of the node.
	Score    float64  `json:"score"`
	Kept     bool     `json:"kept"`
	Problems []string `json:"problems,omitempty"`
}

// Cluster outcomes in an explanation.
const (
	OutcomeChosen   = "chosen"
	OutcomeLost     = "lost"
	OutcomeFiltered = "filtered"
)

// ClusterScore is one cluster's result.
type ClusterScore struct {
	Cluster   string  `json:"cluster"`
	Score     float64 `json:"score"`
	KeptNodes int     `json:"keptNodes"`
	Outcome   string  `json:"outcome"`
	// Reason says why it lost or was filtered ("node e-1: memory pressure;
	// node e-2: 1 CPU free, needs 2"; "excluded after failure until 12:03:10").
	Reason string `json:"reason,omitempty"`
}
