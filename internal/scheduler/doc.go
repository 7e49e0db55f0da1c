// Package scheduler decides where the components of an application run,
// with the paper's Borda-count method, its known faults fixed. It is a pure
// library: no I/O, no clock (the caller passes Now), the same input always
// gives the same answer.
//
// The lead calls Schedule for one application at a time with what its
// knowledge base holds, and stores the decisions that changed something.
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
}

// Action is what a decision does to a component.
type Action string

// The actions.
const (
	ActionKeep     Action = "keep"     // nothing changes
	ActionPlace    Action = "place"    // first placement (or a Pending one now fits)
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
	// the lead to record in Input.Excluded.
	ExcludeCluster string    `json:"excludeCluster,omitempty"`
	ExcludeUntil   time.Time `json:"excludeUntil,omitempty"`
}
