package scheduler

import (
	"fmt"
	"math"
	"strconv"

	"k8s.io/apimachinery/pkg/api/resource"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/spec"
)

// goal is one of the QoS goals an application weighs. Every criterion
// serves exactly one goal and weights are applied per goal, in one place
// (rank), so a goal served by several criteria weighs no more
// than one served by a single criterion. The prototype summed the four
// capacity ranks into "performance", which made it outweigh energy and
// price about four to one.
type goal int

const (
	goalEnergy goal = iota
	goalCost
	goalPerformance
	numGoals
)

// criterion is one fact about a node that the Borda count ranks: a small
// plugin with a name, a direction and a way to read the fact. Its score is
// its Borda points over the tier's healthy nodes divided by their number
// minus one, so every criterion is bounded to [0,1] whatever the size of
// the fleet (tierIndex.count).
type criterion struct {
	name           string
	goal           goal
	higherIsBetter bool
	// read returns the node's fact, or a problem when the fact is missing
	// or malformed; such a node ranks worst on this criterion.
	read func(n *fleet.Node) (float64, string)
}

const numCriteria = 6

// criteria is the registry, in the order explanations list them.
//
// Capacity is ranked on what the node has (allocatable), not on what is
// left of it: the performance goal asks for fast nodes, and whether the
// component still fits is the filter's business. Ranking on free capacity
// would also feed a placement back into its own score (the component's
// requests lower its cluster's free capacity, so the next round would
// find another cluster "better" and move it back and forth).
var criteria = [numCriteria]criterion{
	{CriterionEnergy, goalEnergy, false, label(fleet.LabelEnergy)},
	{CriterionPrice, goalCost, false, label(fleet.LabelPrice)},
	{CriterionCPU, goalPerformance, true, func(n *fleet.Node) (float64, string) {
		return float64(n.Allocatable.MilliCPU) / 1000, ""
	}},
	{CriterionMemory, goalPerformance, true, func(n *fleet.Node) (float64, string) {
		return float64(n.Allocatable.MemoryBytes), ""
	}},
	{CriterionBandwidth, goalPerformance, true, label(fleet.LabelBandwidth)},
	{CriterionStorage, goalPerformance, true, func(n *fleet.Node) (float64, string) {
		return float64(n.Allocatable.EphemeralStorage), ""
	}},
}

// criteriaPerGoal counts the criteria that serve each goal.
var criteriaPerGoal = func() (n [numGoals]int) {
	for _, c := range criteria {
		n[c.goal]++
	}
	return n
}()

func criterionNames() []string {
	out := make([]string, numCriteria)
	for i, c := range criteria {
		out[i] = c.name
	}
	return out
}

// label reads a QoS label as a non-negative number. Plain decimals are the
// norm ("0.0024042"); Kubernetes quantities ("100G") are accepted too,
// since label values cannot carry exponents with a sign.
func label(key string) func(n *fleet.Node) (float64, string) {
	return func(n *fleet.Node) (float64, string) {
		s, ok := n.Labels[key]
		if !ok || s == "" {
			return 0, "label " + key + " is missing"
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			q, qerr := resource.ParseQuantity(s)
			if qerr != nil {
				return 0, fmt.Sprintf("label %s=%q is not a number", key, s)
			}
			v = q.AsApproximateFloat64()
		}
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return 0, fmt.Sprintf("label %s=%q is not a non-negative number", key, s)
		}
		return v, ""
	}
}

// goalWeights turns the application's QoS into weights per goal that sum
// to 1. All zero (or nonsense, which validation already refuses) means
// balanced: every goal weighs the same.
func goalWeights(q spec.QoS) (w [numGoals]float64, balanced bool) {
	raw := [numGoals]float64{q.Energy, q.Cost, q.Performance}
	sum := 0.0
	for i, v := range raw {
		if !(v > 0) || math.IsInf(v, 0) {
			raw[i] = 0
		}
		sum += raw[i]
	}
	if sum == 0 {
		for i := range w {
			w[i] = 1.0 / float64(numGoals)
		}
		return w, true
	}
	for i, v := range raw {
		w[i] = v / sum
	}
	return w, false
}
