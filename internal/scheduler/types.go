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
	Component string     `json:"component"`
	Tier      fleet.Tier `json:"tier"`
	// Weights are the weights applied, scaled to sum to 1.
	Weights      spec.QoS          `json:"weights"`
	Balanced     bool              `json:"balanced,omitempty"`
	Requirements spec.Requirements `json:"requirements"`
	Criteria     []string          `json:"criteria"`
	// RankedNodes is how many nodes the Borda count ranked: every healthy
	// node of the tier (see NodeScore.Ranks).
	RankedNodes int `json:"rankedNodes"`
	// Mean is the mean score of the ranked nodes: those at or above it are kept.
	Mean float64 `json:"mean"`
	// Nodes are the candidate nodes that passed the filters, best first.
	Nodes []NodeScore `json:"nodes"`
	// OmittedNodes counts candidates not listed in Nodes (Config.ExplainNodes).
	OmittedNodes int `json:"omittedNodes,omitempty"`
	// OmittedClusters counts clusters not listed in Clusters (Config.ExplainClusters).
	OmittedClusters int `json:"omittedClusters,omitempty"`
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
	// Ranks are the Borda points per criterion (higher is better): how
	// many of the tier's healthy nodes (Explanation.RankedNodes) the node
	// beats, ties counting half; a node with a missing value gets 0.
	Ranks map[string]float64 `json:"ranks"`
	// Goals are the node's score per QoS goal, each in [0,1]: energy and
	// cost are the energy and price points divided by RankedNodes-1,
	// performance the mean of the four capacity criteria scaled so.
	Goals Goals `json:"goals"`
	// Score is the weighted score of the node: the goals weighted by the
	// application's QoS (weights summing to 1), so it is in [0,1].
	Score    float64  `json:"score"`
	Kept     bool     `json:"kept"`
	Problems []string `json:"problems,omitempty"`
}

// Goals are scores per QoS goal, each in [0,1], higher is better.
type Goals struct {
	Energy      float64 `json:"energy"`
	Cost        float64 `json:"cost"`
	Performance float64 `json:"performance"`
}

// Cluster outcomes in an explanation.
const (
	OutcomeChosen   = "chosen"
	OutcomeLost     = "lost"
	OutcomeFiltered = "filtered"
)

// ClusterScore is one cluster's result.
type ClusterScore struct {
	Cluster string `json:"cluster"`
	// Score is the mean score of the cluster's kept nodes, so a cluster
	// gains nothing from its number of nodes. When its kept nodes with room
	// cannot hold the component and weaker nodes must join, it is the mean
	// of that node set instead, which is below the tier's mean.
	Score float64 `json:"score"`
	// KeptNodes counts its healthy nodes of the right architecture at or
	// above the mean score, with or without room right now.
	KeptNodes int    `json:"keptNodes"`
	Outcome   string `json:"outcome"`
	// Reason says why it lost or was filtered ("node e-1: memory pressure;
	// node e-2: 1 CPU free, needs 2"; "excluded after failure until 12:03:10").
	Reason string `json:"reason,omitempty"`
}
