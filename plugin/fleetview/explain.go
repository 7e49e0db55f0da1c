package fleetview

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/scheduler"
)

// defaultCriteria is the order explanations list criteria in when an
// explanation does not name them.
var defaultCriteria = []string{
	scheduler.CriterionEnergy, scheduler.CriterionPrice, scheduler.CriterionCPU,
	scheduler.CriterionMemory, scheduler.CriterionBandwidth, scheduler.CriterionStorage,
}

// CriterionValue formats a node's raw value for a criterion in its unit:
// the scheduler ranks allocatable cpu in cores, memory and storage in
// bytes, bandwidth in bit/s, energy and price as the labels say.
func CriterionValue(criterion string, v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	switch criterion {
	case scheduler.CriterionCPU:
		return MilliCPU(int64(math.Round(v * 1000)))
	case scheduler.CriterionMemory, scheduler.CriterionStorage:
		return Bytes(int64(math.Round(v)))
	case scheduler.CriterionBandwidth:
		return Bandwidth(v)
	}
	return Number(v)
}

// Score formats a weighted score.
func Score(v float64) string { return fmt.Sprintf("%.3f", v) }

// Resources formats an amount as "cpu 500m, memory 256Mi, pods 2".
func Resources(r fleet.Resources) string {
	parts := []string{"cpu " + MilliCPU(r.MilliCPU), "memory " + Bytes(r.MemoryBytes)}
	if r.EphemeralStorage != 0 {
		parts = append(parts, "ephemeral-storage "+Bytes(r.EphemeralStorage))
	}
	parts = append(parts, fmt.Sprintf("pods %d", r.Pods))
	return strings.Join(parts, ", ")
}

// WriteExplanation writes why a component was placed where it was: the
// weights, each candidate node's values and Borda ranks per criterion with
// its weighted score, each cluster's score and outcome, and the summary.
func WriteExplanation(w io.Writer, e *scheduler.Explanation) error {
	ew := &ErrWriter{W: w}
	if e == nil {
		ew.Printf("No explanation recorded.\n")
		return ew.Err
	}
	weights := QoS(e.Weights)
	if e.Balanced {
		weights = "balanced (no goal weighted)"
	}
	tw := tabwriter.NewWriter(ew, 0, 8, 2, ' ', 0)
	tfmt := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	tfmt("Component:\t%s\n", e.Component)
	tfmt("Tier:\t%s\n", e.Tier)
	tfmt("Weights:\t%s\n", weights)
	tfmt("Requirements:\t%s\n", Resources(e.Requirements.Total))
	if e.Requirements.LargestPod != (fleet.Resources{}) {
		tfmt("Largest pod:\t%s\n", Resources(e.Requirements.LargestPod))
	}
	if e.Requirements.Architecture != "" {
		tfmt("Architecture:\t%s\n", e.Requirements.Architecture)
	}
	tfmt("Chosen:\t%s\n", OrDash(e.Chosen))
	_ = tw.Flush()

	criteria := e.Criteria
	if len(criteria) == 0 {
		criteria = defaultCriteria
	}
	ew.Printf("\nNodes: value (Borda rank, higher is better); GOALS energy/cost/performance:\n")
	if e.RankedNodes > 0 {
		ew.Printf("  %d healthy nodes of the tier ranked; mean score %s: nodes at or above it are kept.\n", e.RankedNodes, Score(e.Mean))
	}
	if len(e.Nodes) == 0 {
		ew.Printf("  none passed the filters\n")
	} else {
		tw = tabwriter.NewWriter(ew, 0, 8, 2, ' ', 0)
		tfmt("  CLUSTER\tNODE")
		for _, c := range criteria {
			tfmt("\t%s", strings.ToUpper(c))
		}
		tfmt("\tGOALS\tSCORE\tKEPT\n")
		for _, n := range e.Nodes {
			tfmt("  %s\t%s", n.Cluster, n.Node)
			for _, c := range criteria {
				v, ok := n.Values[c]
				val := "-"
				if ok {
					val = CriterionValue(c, v)
				}
				tfmt("\t%s (%s)", val, Number(n.Ranks[c]))
			}
			kept := "no"
			if n.Kept {
				kept = "yes"
			}
			g := n.Goals
			tfmt("\t%.2f/%.2f/%.2f\t%s\t%s\n", g.Energy, g.Cost, g.Performance, Score(n.Score), kept)
		}
		_ = tw.Flush()
		if e.OmittedNodes > 0 {
			ew.Printf("  … and %d more candidates, not listed.\n", e.OmittedNodes)
		}
		for _, n := range e.Nodes {
			for _, p := range n.Problems {
				ew.Printf("  %s/%s: %s\n", n.Cluster, n.Node, p)
			}
		}
	}

	ew.Printf("\nClusters:\n")
	if len(e.Clusters) == 0 {
		ew.Printf("  no cluster of tier %s\n", e.Tier)
	} else {
		tw = tabwriter.NewWriter(ew, 0, 8, 2, ' ', 0)
		tfmt("  CLUSTER\tOUTCOME\tSCORE\tKEPT NODES\tREASON\n")
		for _, c := range e.Clusters {
			score := Score(c.Score)
			if c.Outcome == scheduler.OutcomeFiltered {
				score = "-"
			}
			tfmt("  %s\t%s\t%s\t%d\t%s\n", c.Cluster, c.Outcome, score, c.KeptNodes, OrDash(c.Reason))
		}
		_ = tw.Flush()
		if e.OmittedClusters > 0 {
			ew.Printf("  … and %d more clusters, not listed.\n", e.OmittedClusters)
		}
	}
	ew.Printf("\nSummary: %s\n", OrDash(e.Summary))
	return ew.Err
}

// ErrWriter keeps the first write error so a long report checks it once.
type ErrWriter struct {
	W   io.Writer
	Err error
}

func (e *ErrWriter) Write(p []byte) (int, error) {
	if e.Err != nil {
		return 0, e.Err
	}
	n, err := e.W.Write(p)
	e.Err = err
	return n, err
}

// Printf writes a formatted line; a failure is kept in Err.
func (e *ErrWriter) Printf(format string, args ...any) { fmt.Fprintf(e, format, args...) }
