package scheduler

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/spec"
)

// maxListed bounds how many nodes or clusters a reason names before it
// says "and N more": a reason is for a person to read.
const maxListed = 3

// explain builds the explanation of a decision whose placement is on the
// cluster with index chosen (-1: none).
func (r *round) explain(dc *decision, chosen int, summary string) *Explanation {
	rk := dc.rk
	e := &Explanation{
		Component:    dc.c.Name,
		Tier:         dc.c.Tier,
		Weights:      spec.QoS{Energy: r.weights[goalEnergy], Cost: r.weights[goalCost], Performance: r.weights[goalPerformance]},
		Balanced:     r.balanced,
		Requirements: dc.req,
		Criteria:     criterionNames(),
		Mean:         rk.mean,
		RankedNodes:  len(rk.tier.healthy),
		Summary:      summary,
	}
	chosenName := ""
	if chosen >= 0 {
		chosenName = r.p.clusters[chosen].Name
		e.Chosen = chosenName
	}
	ranked := rk.result(chosen) != nil
	// Chosen first, then the losers best first, then the filtered; by name
	// within each (tier order is name order). Sorting indices, not the
	// structs, keeps this cheap on a tier of hundreds of clusters.
	outcome := func(cr *clusterResult) int {
		switch {
		case cr.fail != failNone:
			return 2
		case cr.cluster == chosen:
			return 0
		}
		return 1
	}
	order := make([]int, len(rk.clusters))
	for k := range order {
		order[k] = k
	}
	slices.SortFunc(order, func(a, b int) int {
		ca, cb := &rk.clusters[a], &rk.clusters[b]
		oa, ob := outcome(ca), outcome(cb)
		if oa != ob {
			return cmp.Compare(oa, ob)
		}
		if oa == 1 {
			if c := cmp.Compare(cb.score, ca.score); c != 0 {
				return c
			}
		}
		return cmp.Compare(a, b)
	})
	curName := ""
	if dc.cur != nil {
		curName = dc.cur.Cluster
	}
	limit := max(r.cfg.ExplainClusters, 0)
	e.Clusters = make([]ClusterScore, 0, min(len(rk.clusters), limit+2))
	listed := 0
	for _, k := range order {
		cr := &rk.clusters[k]
		if outcome(cr) != 0 && r.name(cr) != curName {
			if listed >= limit {
				e.OmittedClusters++
				continue
			}
			listed++
		}
		cs := ClusterScore{Cluster: r.name(cr), Score: cr.score, KeptNodes: cr.kept}
		switch outcome(cr) {
		case 2:
			cs.Outcome, cs.Reason = OutcomeFiltered, cr.filtered
		case 0:
			cs.Outcome, cs.Reason = OutcomeChosen, setNote(rk, cr)
		default:
			cs.Outcome = OutcomeLost
			why, ok := dc.notes[cr.cluster]
			note := setNote(rk, cr)
			switch {
			case ok && note != "":
				cs.Reason = why + "; " + note
			case ok:
				cs.Reason = why
			case ranked && note != "":
				cs.Reason = "scores lower than " + chosenName + "; " + note
			case ranked:
				cs.Reason = "scores lower than " + chosenName
			default:
				cs.Reason = note
			}
		}
		e.Clusters = append(e.Clusters, cs)
	}

	curCI := -1
	if dc.cur != nil {
		if ci, ok := r.p.byName[dc.cur.Cluster]; ok {
			curCI = ci
		}
	}
	e.Nodes, e.OmittedNodes = r.explainNodes(rk, chosen, curCI)
	return e
}

// setNote says how a cluster's node set departs from its kept nodes. It
// runs for every cluster of every decision, hence one concatenation each.
func setNote(rk *ranking, cr *clusterResult) string {
	if cr.set == 0 {
		return ""
	}
	room := rk.keptRoom(cr)
	switch {
	case cr.set <= room:
		return ""
	case cr.kept == 0:
		return "no node at or above the mean; scored by the " + strconv.Itoa(cr.set) + " best node" + plural(cr.set) +
			" that hold" + verbS(cr.set) + " the component"
	case room == 0:
		return "none of its " + strconv.Itoa(cr.kept) + " kept node" + plural(cr.kept) + " has room; scored by the " +
			strconv.Itoa(cr.set) + " best node" + plural(cr.set) + " that hold" + verbS(cr.set) + " the component"
	}
	return "its " + strconv.Itoa(room) + " kept node" + plural(room) + " with room cannot hold the component, so " +
		strconv.Itoa(cr.set-room) + " node" + plural(cr.set-room) + " below the mean join; scored by that set"
}

// nNouns says "1 node", "2 nodes".
func nNouns(n int, noun string) string { return strconv.Itoa(n) + " " + noun + plural(n) }

// verbS is the verb ending that agrees with n things: "it holds", "they hold".
func verbS(n int) string {
	if n == 1 {
		return "s"
	}
	return ""
}

// explainNodes lists every candidate of the chosen and the current
// cluster plus the best Config.ExplainNodes others, best first.
func (r *round) explainNodes(rk *ranking, chosen, current int) ([]NodeScore, int) {
	better := func(a, b int32) int {
		ca, cb := &rk.cands[a], &rk.cands[b]
		// Node indices follow (cluster, name) order.
		return cmp.Or(cmp.Compare(cb.score, ca.score), cmp.Compare(ca.node, cb.node))
	}
	k := max(r.cfg.ExplainNodes, 0)
	var all, top []int32
	for i := range rk.clusters {
		cr := &rk.clusters[i]
		for _, o := range cr.cands {
			if cr.cluster == chosen || cr.cluster == current {
				all = append(all, o)
				continue
			}
			if len(top) == k && (k == 0 || better(o, top[k-1]) >= 0) {
				continue
			}
			at, _ := slices.BinarySearchFunc(top, o, better)
			top = slices.Insert(top, at, o)
			if len(top) > k {
				top = top[:k]
			}
		}
	}
	all = append(all, top...)
	slices.SortFunc(all, better)
	out := make([]NodeScore, len(all))
	for i, o := range all {
		out[i] = r.nodeScore(rk.tier, &rk.cands[o])
	}
	return out, len(rk.cands) - len(all)
}

func (r *round) nodeScore(t *tierIndex, cd *candidate) NodeScore {
	nf := &r.p.nodes[cd.node]
	goals, points := &t.goals[cd.pos], &t.points[cd.pos]
	ns := NodeScore{
		Cluster: nf.Cluster,
		Node:    nf.Name,
		Values:  make(map[string]float64, numCriteria),
		Ranks:   make(map[string]float64, numCriteria),
		Goals:   Goals{Energy: goals[goalEnergy], Cost: goals[goalCost], Performance: goals[goalPerformance]},
		Score:   cd.score,
		Kept:    cd.kept,
	}
	for c, cr := range criteria {
		ns.Ranks[cr.name] = points[c]
		if why := nf.problem(c); why == "" {
			ns.Values[cr.name] = nf.values[c]
		} else {
			ns.Problems = append(ns.Problems, why)
		}
	}
	return ns
}

// standing says how the chosen cluster ranked, for a summary.
func (r *round) standing(rk *ranking, best *clusterResult) string {
	ranked, next := 0, (*clusterResult)(nil)
	for k := range rk.clusters {
		cr := &rk.clusters[k]
		if cr.fail != failNone {
			continue
		}
		ranked++
		if cr != best && (next == nil || cr.score > next.score+eps) {
			next = cr
		}
	}
	s := fmt.Sprintf("score %.3f, best of %d %s cluster%s that can take it", best.score, ranked, rk.tierName(r), plural(ranked))
	if next != nil {
		s += fmt.Sprintf(" (next: %s %.3f)", r.name(next), next.score)
	}
	return s
}

func (rk *ranking) tierName(r *round) fleet.Tier {
	if len(rk.tier.clusters) == 0 {
		return ""
	}
	return r.p.clusters[rk.tier.clusters[0]].Tier
}

// pendingReason says why no cluster can take the component: a headline
// from the most telling failure ("no fog cluster has 2 CPU free for
// reviews"), then each cluster's reason.
func (r *round) pendingReason(dc *decision) string {
	rk, c := dc.rk, dc.c
	if len(rk.clusters) == 0 {
		return fmt.Sprintf("no %s cluster is registered for %s", c.Tier, c.Name)
	}
	// The cluster that came closest tells most; among set-fit failures, one
	// that had the room in all but lacked a way to pack it came closer, and
	// "no cluster has 24 CPU free" would be false with it around.
	var telling *clusterResult
	for k := range rk.clusters {
		cr := &rk.clusters[k]
		if telling == nil || cr.fail > telling.fail || (cr.fail == telling.fail && cr.fail == failSetFit && cr.short == "" && telling.short != "") {
			telling = cr
		}
	}
	var head string
	switch telling.fail {
	case failSetFit:
		if telling.short != "" {
			head = fmt.Sprintf("no %s cluster has %s free for %s", c.Tier, amount(telling.short, dc.req.Total), c.Name)
		} else {
			head = fmt.Sprintf("no %s cluster has room for the %d pods of %s", c.Tier, dc.req.Total.Pods, c.Name)
		}
	case failNodeFit:
		head = fmt.Sprintf("no %s cluster has a node with %s free for %s", c.Tier, amount(telling.short, dc.req.LargestPod), c.Name)
	case failArch:
		head = fmt.Sprintf("no %s cluster has a healthy %s node for %s", c.Tier, dc.req.Architecture, c.Name)
	case failUnhealthy, failNoNodes:
		head = fmt.Sprintf("no %s cluster has a healthy node for %s", c.Tier, c.Name)
	default:
		head = fmt.Sprintf("every %s cluster is down or excluded for %s", c.Tier, c.Name)
	}
	details := make([]string, 0, len(rk.clusters))
	for k := range rk.clusters {
		details = append(details, r.name(&rk.clusters[k])+": "+rk.clusters[k].filtered)
	}
	return head + " (" + capList(details, maxListed, "cluster", "; ") + ")"
}

// whyNoCandidates says why none of a cluster's nodes is a candidate.
func (r *round) whyNoCandidates(c *clusterFacts, m podModel, arch string) (failKind, string, string) {
	if len(c.nodes) == 0 {
		return failNoNodes, "", "no nodes reported"
	}
	type problem struct {
		kind failKind
		node int32
	}
	probs := make([]problem, 0, len(c.nodes))
	kind, short := failUnhealthy, ""
	for _, ni := range c.nodes {
		nf := &r.p.nodes[ni]
		k := failUnhealthy
		switch {
		case nf.unhealthy != "":
		case !archOK(nf, arch):
			k = failArch
		default:
			k = failNodeFit
			if _, s := m.fitsNode(r.free(ni)); short == "" {
				short = s
			}
		}
		kind = max(kind, k)
		probs = append(probs, problem{k, ni})
	}
	// The most telling problems first: a full node says more than a sick
	// one. Only those named are put into words.
	slices.SortStableFunc(probs, func(a, b problem) int { return cmp.Compare(b.kind, a.kind) })
	texts := make([]string, 0, maxListed+1)
	for i, p := range probs {
		if i == maxListed {
			texts = append(texts, "")
			break
		}
		texts = append(texts, "node "+r.p.nodes[p.node].Name+": "+r.nodeProblem(p.node, m, arch))
	}
	if len(probs) > maxListed {
		more := len(probs) - maxListed
		texts[maxListed] = "and " + nNouns(more, "more node")
	}
	return kind, short, strings.Join(texts, ", ")
}

// nodeProblem says why a node is not a candidate for the component.
func (r *round) nodeProblem(ni int32, m podModel, arch string) string {
	nf := &r.p.nodes[ni]
	if nf.unhealthy != "" {
		return nf.unhealthy
	}
	if !archOK(nf, arch) {
		if nf.Architecture == "" {
			return "architecture unknown (needs " + arch + ")"
		}
		return "architecture " + nf.Architecture + " (needs " + arch + ")"
	}
	free := r.free(ni)
	if ok, short := m.fitsNode(free); !ok {
		return amount(short, max0(free)) + " free (needs " + amount(short, m.largest) + ")"
	}
	return "not among the candidates"
}

// whySetShort says why a cluster's candidates together cannot hold the
// component.
func (r *round) whySetShort(rk *ranking, cr *clusterResult, m podModel) (failKind, string, string) {
	nodes := r.nodesOf(rk, cr.cands)
	var pool fleet.Resources
	for _, ni := range nodes {
		pool = pool.Add(max0(r.free(ni)))
	}
	total := m.largest.Add(m.rest.Scale(m.count - 1))
	what, have, hold := fmt.Sprintf("its %d candidate nodes", len(nodes)), "have", "hold"
	if len(nodes) == 1 {
		what, have, hold = "its only candidate node", "has", "holds"
	}
	if ok, short := pool.Fits(total); !ok {
		return failSetFit, short, fmt.Sprintf("%s %s %s free together (needs %s)", what, have, amount(short, pool), amount(short, total))
	}
	held := int64(1)
	for i, ni := range nodes {
		f := r.free(ni)
		if i == 0 {
			f = f.Sub(m.largest)
		}
		held += howMany(f, m.rest)
	}
	return failSetFit, "", fmt.Sprintf("%s %s only %d of its %d pods", what, hold, held, m.count)
}

// amount formats one resource of r for a person: "2 CPU", "1.5 GiB memory".
func amount(res string, r fleet.Resources) string {
	switch res {
	case "cpu":
		return strconv.FormatFloat(float64(r.MilliCPU)/1000, 'f', -1, 64) + " CPU"
	case "memory":
		return fmtBytes(r.MemoryBytes) + " memory"
	case "ephemeral-storage":
		return fmtBytes(r.EphemeralStorage) + " ephemeral storage"
	case "pods":
		return fmt.Sprintf("%d pod slot%s", r.Pods, plural(int(r.Pods)))
	}
	return res
}

func fmtBytes(b int64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	v, i := float64(b), 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return strconv.FormatFloat(float64(int64(v*100+0.5))/100, 'f', -1, 64) + " " + [...]string{"B", "KiB", "MiB", "GiB", "TiB"}[i]
}

func max0(r fleet.Resources) fleet.Resources {
	return fleet.Resources{MilliCPU: max(r.MilliCPU, 0), MemoryBytes: max(r.MemoryBytes, 0), EphemeralStorage: max(r.EphemeralStorage, 0), Pods: max(r.Pods, 0)}
}

// capList joins items, naming at most n of them.
func capList(items []string, n int, noun, sep string) string {
	if len(items) <= n {
		return strings.Join(items, sep)
	}
	more := len(items) - n
	return strings.Join(items[:n], sep) + fmt.Sprintf("%sand %d more %s%s", sep, more, noun, plural(more))
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func pct(f float64) string {
	if f > 1e6 {
		return "far more"
	}
	return strconv.FormatFloat(f*100, 'f', 1, 64) + "%"
}

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }
