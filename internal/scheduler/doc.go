// Package scheduler decides where the components of an application run,
// with the paper's Borda-count method, its known faults fixed. It is a pure
// library: no I/O, no clock (the caller passes Now), the same input always
// gives the same answer.
//
// The lead calls Schedule for one application at a time with what its
// knowledge base holds, and stores the decisions that changed something
// (Decision.Changed). For a round over many applications it indexes the
// fleet once with Prepare, passes it in Input.Prepared and calls
// Prepared.Reserve with each decision, so later applications see the room
// earlier ones take.
//
// # The method
//
// For a component, the nodes of the clusters of its tier are ranked with a
// Borda count on six criteria (criteria.go): energy and price (labels,
// lower is better), cpu, memory and ephemeral storage (allocatable) and
// bandwidth (label), higher is better. The count runs over the tier's
// healthy nodes (tierIndex.count says why not only over the nodes with
// room). Points are scaled to [0,1] and averaged per QoS goal, so
// performance (the four capacity criteria) weighs as much as energy or
// cost, not four times more as in the prototype; the application's weights
// (all zero: balanced) make a node's score. Nodes at or above the mean
// score are kept.
//
// A node can take the component if it is healthy (Ready, schedulable, no
// pressure, facts fresh), of the architecture the component pins, and has
// room for its largest pod; a cluster can take it if those nodes hold all
// of its pods (fit.go). A cluster scores the mean of its kept nodes, so
// size earns nothing; the best score wins, near-ties by name (rank.go).
// Down clusters and clusters in a component's back-off are filtered out,
// and everything filtered, lost or chosen is explained (explain.go).
//
// A placement is kept unless it must leave (failover: its cluster is down,
// gone or sick, or the component failed there; the cluster is then
// excluded for Config.Backoff) or a cluster beats it by more than
// Config.Margin (migrate, make-before-break). Schedule's doc has the rules.
package scheduler

import (
	"time"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/spec"
)

// Config are the scheduler's knobs. The zero value of a field means its default.
type Config struct {
	// Margin is the relative gain a better cluster needs over the current,
	// healthy one before a component moves (hysteresis). Default 0.10.
	Margin float64
	// NodeStaleAfter: node facts older than this are not candidates. Default 2m.
	NodeStaleAfter time.Duration
	// Backoff is how long a cluster a component failed over from is excluded
	// for that component. Default 5m.
	Backoff time.Duration
	// ExplainNodes is how many of the best candidate nodes an explanation
	// lists besides every node of the chosen and the current cluster.
	// Default 16 (the paper's profile has 9 candidates per tier, so all of
	// them); a negative value lists only those two clusters' nodes. It
	// bounds what is stored per placement and what a decision allocates on
	// a large fleet; Explanation.OmittedNodes counts the rest.
	ExplainNodes int
	// ExplainClusters is how many clusters an explanation lists: the
	// chosen one and the current one always, then the others in order
	// (losers best first, then the filtered). Default 32; negative lists
	// only the chosen and current. Explanations are stored with every
	// placement, and a tier of hundreds of clusters made them most of a
	// lead's memory.
	ExplainClusters int
}

// Input is everything the scheduler needs to decide one application.
type Input struct {
	Now        time.Time
	App        *spec.Application
	Generation int64
	Clusters   []fleet.Cluster
	Nodes      []fleet.Node
	// Current are the application's placements as stored (any order).
	Current []Placement
	// Down are clusters whose heartbeats stopped: what runs there fails over.
	Down map[string]bool
	// Failed are components (by name) whose status on their current cluster
	// is Failed, or stuck short of Healthy past the lead's timeout.
	Failed map[string]bool
	// Excluded maps component name → cluster → end of its back-off.
	Excluded map[string]map[string]time.Time
	// Prepared, when set, is the fleet already indexed by Prepare; Clusters
	// and Nodes are then ignored. A lead deciding many applications over
	// the same facts prepares once per round instead of once per call.
	Prepared *Prepared
}

// Action is what a decision does to a component.
type Action string

// The actions.
const (
	ActionKeep     Action = "keep"     // nothing changes
	ActionPlace    Action = "place"    // first placement, a Pending one now fits, or new nodes on the same cluster
	ActionMigrate  Action = "migrate"  // QoS or facts changed enough: move make-before-break
	ActionFailover Action = "failover" // its cluster is down or it failed there: move now
	ActionPending  Action = "pending"  // nowhere fits; Placement.Reason says why
)

// Decision is the scheduler's answer for one component.
type Decision struct {
	Component string    `json:"component"`
	Action    Action    `json:"action"`
	Placement Placement `json:"placement"`
	// On failover, the cluster left behind and the end of its back-off, for
	// the lead to record in Input.Excluded. They are also set on a Pending
	// decision when the component had to leave a failed cluster and no
	// other one could take it.
	ExcludeCluster string    `json:"excludeCluster,omitempty"`
	ExcludeUntil   time.Time `json:"excludeUntil,omitempty"`
}
