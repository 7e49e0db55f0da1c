package scheduler

import (
	"cmp"
	"slices"

	"qonnect.io/qonnect/internal/fleet"
)

// eps is how close two scores must be to count as a tie. Scores are sums
// of a few fractions, so real differences are far larger; without it, the
// same scores summed in a different order could break a tie by rounding
// instead of by name.
const eps = 1e-9

// candidate is one node that passed the filters for the component.
type candidate struct {
	node  int32   // index into Prepared.nodes
	pos   int32   // tier position, for its points and goal scores
	score float64 // goals weighted, in [0,1]
	kept  bool    // score at or above the mean
}

// failKind is why a cluster cannot take the component, coarsest first.
type failKind int

const (
	failNone      failKind = iota
	failDown               // heartbeats stopped
	failExcluded           // in back-off after a failure, or being failed over from now
	failNoNodes            // no node reported
	failUnhealthy          // no node is healthy
	failArch               // no healthy node has the architecture
	failNodeFit            // no healthy node has room for the largest pod
	failSetFit             // its candidates together cannot hold every pod
)

// clusterResult is one cluster's part of a ranking.
type clusterResult struct {
	cluster  int
	fail     failKind
	filtered string // why it cannot take the component; "" when ranked
	short    string // for failNodeFit and failSetFit: the resource short
	// cands are the cluster's candidate ordinals, best first; the first
	// set of them are its node set.
	cands []int32
	set   int
	// kept counts the cluster's eligible nodes (healthy, of the right
	// architecture) at or above the mean, with or without room now, and
	// keptSum sums their scores.
	kept    int
	keptSum float64
	score   float64
}

// ranking is one component's view of its tier.
type ranking struct {
	tier     *tierIndex
	cands    []candidate
	clusters []clusterResult
	mean     float64 // of the weighted scores of the tier's healthy nodes
	best     int     // index into clusters, -1 when none can take the component
}

// scratch is memory a decision reuses, pooled across calls.
type scratch struct {
	ord       []int32 // per tier position: candidate ordinal, or -1
	cands     []candidate
	byCluster []int32
	clusters  []clusterResult
	// adjust is, per node, the room this call sees beyond the facts (see
	// round.adjust); touched lists the nodes to reset when the call ends.
	adjust  []fleet.Resources
	touched []int32
}

// avoidFunc says whether a cluster is ruled out before looking at nodes.
type avoidFunc func(ci int) (failKind, string)

// rank weighs the Borda points of the tier's eligible nodes (healthy, of
// the component's architecture, in a cluster it may go to), keeps those
// at or above the mean, takes as candidates those with room for its
// largest pod and scores every cluster.
func (r *round) rank(t *tierIndex, m podModel, arch string, avoid avoidFunc) *ranking {
	sc := r.sc
	sc.ord = slices.Grow(sc.ord[:0], len(t.healthy))[:len(t.healthy)]
	for i := range sc.ord {
		sc.ord[i] = -1
	}
	sc.cands, sc.clusters = sc.cands[:0], sc.clusters[:0]
	rk := &ranking{tier: t, best: -1}
	// The mean of weighted scores is the weighted mean of goal scores.
	for g, w := range r.weights {
		rk.mean += w * t.goalMean[g]
	}
	for _, ci := range t.clusters {
		c := &r.p.clusters[ci]
		cr := clusterResult{cluster: ci}
		cr.fail, cr.filtered = avoid(ci)
		if cr.fail == failNone {
			for pos := c.lo; pos < c.hi; pos++ {
				ni := t.healthy[pos]
				if !archOK(&r.p.nodes[ni], arch) {
					continue
				}
				score := 0.0
				for g, w := range r.weights {
					score += w * t.goals[pos][g]
				}
				kept := score >= rk.mean-eps
				if kept {
					cr.kept++
					cr.keptSum += score
				}
				if ok, _ := m.fitsNode(r.free(ni)); !ok {
					continue
				}
				sc.ord[pos] = int32(len(sc.cands))
				sc.cands = append(sc.cands, candidate{node: ni, pos: int32(pos), score: score, kept: kept})
			}
		}
		sc.clusters = append(sc.clusters, cr)
	}
	rk.cands, rk.clusters = sc.cands, sc.clusters
	r.scoreClusters(rk, m, arch)
	return rk
}

// scoreClusters picks each cluster's node set and scores the cluster.
//
// A cluster's score is the mean score of its kept nodes (eligible, at or
// above the mean), whether or not they have room right now. A mean, unlike
// the prototype's sum, does not grow with the number of nodes: ten middling
// nodes do not outscore three good ones. Leaving room out of it keeps the
// score still while load comes and goes; a mean over only the nodes with
// room would even rise when a cluster's weaker nodes fill up.
//
// The node set is the kept nodes that have room. When they cannot hold the
// component, the cluster's next best nodes with room join until they can,
// and the cluster's score becomes the mean of that set: it is below the
// mean of the tier, so such a cluster only wins when no cluster's good
// nodes can take the component. The best score wins; near-ties go to the
// first cluster by name.
func (r *round) scoreClusters(rk *ranking, m podModel, arch string) {
	sc := r.sc
	sc.byCluster = slices.Grow(sc.byCluster[:0], len(rk.cands))
	bestScore := 0.0
	for k := range rk.clusters {
		cr := &rk.clusters[k]
		if cr.fail != failNone {
			continue
		}
		c := &r.p.clusters[cr.cluster]
		start := len(sc.byCluster)
		for pos := c.lo; pos < c.hi; pos++ {
			if o := sc.ord[pos]; o >= 0 {
				sc.byCluster = append(sc.byCluster, o)
			}
		}
		cr.cands = sc.byCluster[start:len(sc.byCluster):len(sc.byCluster)]
		if len(cr.cands) == 0 {
			cr.fail, cr.short, cr.filtered = r.whyNoCandidates(c, m, arch)
			continue
		}
		// Candidates are in name order; a stable sort keeps that for ties.
		slices.SortStableFunc(cr.cands, func(a, b int32) int {
			return cmp.Compare(rk.cands[b].score, rk.cands[a].score)
		})
		keptRoom := 0
		for _, o := range cr.cands {
			if rk.cands[o].kept {
				keptRoom++
			}
		}
		cr.set = m.fitPrefix(r.nodesOf(rk, cr.cands), keptRoom, r.free)
		switch {
		case cr.set < 0:
			cr.set = 0
			cr.fail, cr.short, cr.filtered = r.whySetShort(rk, cr, m)
			continue
		case cr.set <= keptRoom:
			cr.score = cr.keptSum / float64(cr.kept)
		default:
			sum := 0.0
			for _, o := range cr.cands[:cr.set] {
				sum += rk.cands[o].score
			}
			cr.score = sum / float64(cr.set)
		}
		if rk.best < 0 || cr.score > bestScore+eps {
			rk.best, bestScore = k, cr.score
		}
	}
}

// keptRoom counts the kept nodes in a cluster's node set.
func (rk *ranking) keptRoom(cr *clusterResult) int {
	n := 0
	for _, o := range cr.cands[:cr.set] {
		if rk.cands[o].kept {
			n++
		}
	}
	return n
}

// nodesOf maps candidate ordinals to node indices, reusing a buffer.
func (r *round) nodesOf(rk *ranking, ords []int32) []int32 {
	r.nodeBuf = r.nodeBuf[:0]
	for _, o := range ords {
		r.nodeBuf = append(r.nodeBuf, rk.cands[o].node)
	}
	return r.nodeBuf
}

// result returns the ranking's entry for a cluster, or nil.
func (rk *ranking) result(ci int) *clusterResult {
	for k := range rk.clusters {
		if rk.clusters[k].cluster == ci {
			return &rk.clusters[k]
		}
	}
	return nil
}

// setNodes returns the node indices of a cluster's node set.
func (rk *ranking) setNodes(cr *clusterResult) []int32 {
	out := make([]int32, cr.set)
	for i, o := range cr.cands[:cr.set] {
		out[i] = rk.cands[o].node
	}
	return out
}

func archOK(n *nodeFacts, arch string) bool {
	return arch == "" || n.Architecture == arch
}

// free is the room a node has for the component being decided.
func (r *round) free(ni int32) fleet.Resources {
	return r.p.nodes[ni].Free().Sub(r.p.reserved[ni]).Add(r.sc.adjust[ni])
}
