package scheduler

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/spec"
)

// The defaults of Config.
const (
	DefaultMargin          = 0.10
	DefaultNodeStaleAfter  = 2 * time.Minute
	DefaultBackoff         = 5 * time.Minute
	DefaultExplainNodes    = 16
	DefaultExplainClusters = 32
)

// withDefaults fills zero fields. A negative Margin means no hysteresis
// at all (any gain moves), which only tests should want.
func (cfg Config) withDefaults() Config {
	switch {
	case cfg.Margin == 0 || math.IsNaN(cfg.Margin):
		cfg.Margin = DefaultMargin
	case cfg.Margin < 0:
		cfg.Margin = 0
	}
	if cfg.NodeStaleAfter <= 0 {
		cfg.NodeStaleAfter = DefaultNodeStaleAfter
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.ExplainNodes == 0 {
		cfg.ExplainNodes = DefaultExplainNodes
	}
	if cfg.ExplainClusters == 0 {
		cfg.ExplainClusters = DefaultExplainClusters
	}
	return cfg
}

// Schedule decides every component of in.App. Decisions come in the order
// of the application's components, each with its explanation (a Keep of a
// migration still in progress carries the stored one).
//
// How a component is decided, given its current placement:
//   - none, or Pending: placed on the best cluster (ActionPlace), or
//     Pending with the reason nothing fits.
//   - its cluster is down, gone, has no healthy node, or the component
//     Failed there: failed over to the best other cluster (ActionFailover),
//     the cluster left behind excluded for Config.Backoff (ExcludeCluster,
//     ExcludeUntil); kept where it is if no other cluster can take it
//     (removing it would help nothing).
//   - migrating (From set): kept as it is until the lead finishes the
//     move, unless the target failed, which is a failover (From stays
//     when the source still runs it, so the move stays make-before-break).
//   - its cluster can no longer take it (tier changed, excluded, does not
//     fit): migrated to the best cluster (ActionMigrate, From = old), or
//     kept if no cluster can take it, since it runs where it is.
//   - otherwise hysteresis: it moves (ActionMigrate) only if the best
//     cluster's score beats its current cluster's by more than Config.Margin
//     (relative); else it is kept, re-pinned (ActionPlace on the same
//     cluster) only if one of its nodes is no longer a candidate.
//
// Components placed earlier in the call have their pods set aside on
// their nodes, so later components of the same application see the room
// they leave. Addresses are filled last, from every decision.
func Schedule(cfg Config, in Input) []Decision {
	if in.App == nil {
		return nil
	}
	cfg = cfg.withDefaults()
	p := in.Prepared
	if p == nil {
		p = Prepare(cfg, in.Now, in.Clusters, in.Nodes)
	}
	sc, _ := p.scratch.Get().(*scratch)
	if sc == nil {
		sc = &scratch{adjust: make([]fleet.Resources, len(p.nodes))}
	}
	defer func() {
		for _, ni := range sc.touched {
			sc.adjust[ni] = fleet.Resources{}
		}
		sc.touched = sc.touched[:0]
		p.scratch.Put(sc)
	}()

	r := &round{cfg: cfg, p: p, in: &in, sc: sc, current: make(map[string]*Placement, len(in.Current))}
	r.weights, r.balanced = goalWeights(in.App.Spec.QoS)
	for i := range in.Current {
		if _, dup := r.current[in.Current[i].Component]; !dup {
			r.current[in.Current[i].Component] = &in.Current[i]
		}
	}
	comps := in.App.Spec.Components
	out := make([]Decision, 0, len(comps))
	for i := range comps {
		out = append(out, r.decide(&comps[i]))
	}
	r.fillAddresses(out)
	return out
}

// round is the state of one Schedule call.
type round struct {
	cfg      Config
	p        *Prepared
	in       *Input
	sc       *scratch
	weights  [numGoals]float64
	balanced bool
	current  map[string]*Placement
	// credited are the nodes giveBack credited for the component being
	// decided, and by how much (the credit lives in scratch.adjust).
	credited []int32
	credits  []fleet.Resources
	nodeBuf  []int32
}

// adjust changes the room this call sees on a node: less for what its
// earlier decisions start there, more for the own use of the component
// being decided. It is undone when the call ends.
func (r *round) adjust(ni int32, by fleet.Resources) {
	r.sc.adjust[ni] = r.sc.adjust[ni].Add(by)
	r.sc.touched = append(r.sc.touched, ni)
}

// decision is one component's decision in the making.
type decision struct {
	c     *spec.Component
	req   spec.Requirements
	cur   *Placement
	rk    *ranking
	out   Decision
	notes map[int]string // extra words on why a cluster lost, by cluster index
}

func (r *round) decide(c *spec.Component) Decision {
	in := r.in
	cur := r.current[c.Name]
	running := cur != nil && cur.Cluster != ""
	dc := &decision{c: c, cur: cur, out: Decision{Component: c.Name, Placement: Placement{
		App: in.App.Metadata.Name, Component: c.Name, Tier: c.Tier, Generation: in.Generation, Decided: in.Now,
	}}}

	req, err := spec.ComponentRequirements(c)
	if err != nil {
		why := fmt.Sprintf("cannot read the resource requests of %s: %v", c.Name, err)
		if running {
			return r.keep(dc, why)
		}
		return r.pending(dc, why)
	}
	dc.req = req

	// leaving is a cluster the component must leave now, and why.
	leaving, leaveWhy := "", ""
	if running {
		leaveWhy = r.failure(c.Name, cur.Cluster)
		if leaveWhy != "" {
			leaving = cur.Cluster
		} else if cur.From != "" {
			return r.keep(dc, "")
		}
	}

	// home is where the component's workloads run now and may go on
	// running: its cluster, or the source of a migration whose target failed.
	home, homeNodes := "", []string(nil)
	if running {
		if cur.From != "" {
			home, homeNodes = cur.From, cur.FromNodes
		} else if leaving == "" {
			home, homeNodes = cur.Cluster, cur.Nodes
		}
		if in.Down[home] {
			home = ""
		}
	}
	old := req
	if cur != nil && cur.Explanation != nil {
		old = cur.Explanation.Requirements
	}
	r.giveBack(home, homeNodes, old)
	defer r.takeBack()

	t := r.p.tier(c.Tier)
	if t == nil {
		t = &tierIndex{}
	}
	dc.rk = r.rank(t, newPodModel(req), req.Architecture, r.avoid(c.Name, leaving, leaveWhy))

	var curCR *clusterResult
	if ci, ok := r.p.byName[home]; ok && home != "" {
		curCR = dc.rk.result(ci)
	}
	// A cluster that is up but has no healthy node cannot run anything:
	// that is a failure too, and the cluster is excluded like a down one.
	if running && leaving == "" && cur.From == "" && curCR != nil && (curCR.fail == failUnhealthy || curCR.fail == failNoNodes) {
		leaving, leaveWhy = cur.Cluster, "no node of "+cur.Cluster+" is healthy"
		curCR.fail = failExcluded
		curCR.filtered = leaveWhy + " (" + curCR.filtered + "); excluded until " + fmtTime(in.Now.Add(r.cfg.Backoff))
		home, curCR = "", nil
	}

	var best *clusterResult
	if dc.rk.best >= 0 {
		best = &dc.rk.clusters[dc.rk.best]
	}
	switch {
	case leaving != "":
		return r.failover(dc, leaving, leaveWhy, home, best)
	case running && curCR != nil && curCR.fail == failNone:
		return r.hysteresis(dc, curCR, best)
	case running:
		return r.cannotStay(dc, curCR, best)
	case best != nil:
		r.placeOn(dc, best)
		dc.out.Action = ActionPlace
		return r.finish(dc, best, fmt.Sprintf("placed on %s, %s", r.name(best), r.standing(dc.rk, best)))
	default:
		return r.pending(dc, r.pendingReason(dc))
	}
}

// avoid rules out, before looking at their nodes, the clusters a
// component may not go to now: down ones, those in its back-off, and the
// one it is leaving.
func (r *round) avoid(comp, leaving, leaveWhy string) avoidFunc {
	in := r.in
	excluded := in.Excluded[comp]
	return func(ci int) (failKind, string) {
		name := r.p.clusters[ci].Name
		switch {
		case name == leaving:
			return failExcluded, leaveWhy + "; excluded until " + fmtTime(in.Now.Add(r.cfg.Backoff))
		case in.Down[name]:
			return failDown, "cluster down (heartbeats stopped)"
		}
		if until, ok := excluded[name]; ok && until.After(in.Now) {
			return failExcluded, "excluded after a failure until " + fmtTime(until)
		}
		return failNone, ""
	}
}

// failure says why the component must leave its cluster now, or "".
func (r *round) failure(comp, cluster string) string {
	switch {
	case r.in.Down[cluster]:
		return "cluster " + cluster + " is down"
	case r.in.Failed[comp]:
		return comp + " failed on " + cluster
	}
	if _, ok := r.p.byName[cluster]; !ok {
		return "cluster " + cluster + " is no longer registered"
	}
	return ""
}

func (r *round) failover(dc *decision, leaving, why, home string, best *clusterResult) Decision {
	d := &dc.out
	if best == nil {
		// Nowhere else can take it. Clearing the placement would have the
		// agent remove what may still run (a cluster whose facts are only
		// late, or that comes back): keep it where it is, and say so.
		if cur := dc.cur; cur != nil && cur.Cluster == leaving {
			return r.keep(dc, fmt.Sprintf("kept on %s although it should leave (%s): %s", leaving, why, r.pendingReason(dc)))
		}
		d.ExcludeCluster, d.ExcludeUntil = leaving, r.in.Now.Add(r.cfg.Backoff)
		return r.pending(dc, why+"; "+r.pendingReason(dc))
	}
	d.ExcludeCluster, d.ExcludeUntil = leaving, r.in.Now.Add(r.cfg.Backoff)
	r.placeOn(dc, best)
	d.Action = ActionFailover
	// The target of a migration failed: its source still runs the
	// component and goes on doing so until the new target is healthy.
	if cur := dc.cur; cur.From != "" && home == cur.From && r.name(best) != cur.From {
		d.Placement.From, d.Placement.FromNodes = cur.From, slices.Clone(cur.FromNodes)
	}
	return r.finish(dc, best, fmt.Sprintf("failed over from %s (%s) to %s, %s", leaving, why, r.name(best), r.standing(dc.rk, best)))
}

// hysteresis keeps a healthy placement unless the best cluster beats it
// by more than the margin. Borda points are relative to the tier's other
// healthy nodes, so a node joining or leaving the tier shifts every score
// a little; the margin absorbs that, and a placement never flaps between
// two clusters of similar worth.
func (r *round) hysteresis(dc *decision, curCR, best *clusterResult) Decision {
	if best != curCR {
		g := gain(best.score, curCR.score)
		if g > r.cfg.Margin+eps {
			r.migrate(dc, best)
			return r.finish(dc, best, fmt.Sprintf("moving from %s to %s: score %.3f beats %.3f by %s, more than the margin of %s",
				dc.cur.Cluster, r.name(best), best.score, curCR.score, pct(g), pct(r.cfg.Margin)))
		}
		dc.note(best.cluster, fmt.Sprintf("scores %.3f, %s better than %s, not more than the margin of %s",
			best.score, pct(g), dc.cur.Cluster, pct(r.cfg.Margin)))
	}
	if why, set := r.repin(dc, curCR); why != "" {
		r.pin(dc, curCR.cluster, set, dc.cur.Nodes)
		dc.out.Action = ActionPlace
		return r.finish(dc, curCR, "re-pinned on "+dc.cur.Cluster+": "+why)
	}
	summary := fmt.Sprintf("kept %s: still the best %s cluster (score %.3f)", dc.cur.Cluster, dc.c.Tier, curCR.score)
	if best != curCR {
		summary = fmt.Sprintf("kept %s (score %.3f): %s scores %.3f, %s better, not more than the margin of %s",
			dc.cur.Cluster, curCR.score, r.name(best), best.score, pct(gain(best.score, curCR.score)), pct(r.cfg.Margin))
	}
	return r.keep(dc, summary)
}

// cannotStay handles a healthy cluster that no longer suits the component.
func (r *round) cannotStay(dc *decision, curCR, best *clusterResult) Decision {
	cur := dc.cur
	why := cur.Cluster + " is not in the " + string(dc.c.Tier) + " tier"
	if curCR != nil {
		why = curCR.filtered
	}
	if best == nil {
		return r.keep(dc, fmt.Sprintf("kept %s although it no longer suits %s (%s): no other %s cluster can take it",
			cur.Cluster, dc.c.Name, why, dc.c.Tier))
	}
	r.migrate(dc, best)
	return r.finish(dc, best, fmt.Sprintf("moving from %s (%s) to %s, %s", cur.Cluster, why, r.name(best), r.standing(dc.rk, best)))
}

// repin says why the component must be pinned to other nodes of its
// cluster, and to which; "" when its nodes are fine.
//
// Only a node that is gone, unhealthy or of the wrong architecture is
// replaced: its pods are dead or cannot run. A healthy pinned node short
// of room is not, since the component's pods already run there, and how
// much of its requested room is theirs is not known (the own-use credit
// guesses generously, which is right for staying but would overfill nodes
// if used to move pods around). The surviving nodes stay in the set, so
// nothing that runs is disturbed, and the best nodes with room join as
// needed. A component that grew beyond its nodes gets more the same way.
func (r *round) repin(dc *decision, cr *clusterResult) (string, []int32) {
	var why string
	keep := make([]int32, 0, len(dc.cur.Nodes))
	for _, name := range dc.cur.Nodes {
		ni, ok := r.p.nodeByName(cr.cluster, name)
		switch {
		case !ok:
			why = cmp.Or(why, "node "+name+" is gone")
		case r.p.nodes[ni].unhealthy != "" || !archOK(&r.p.nodes[ni], dc.req.Architecture):
			why = cmp.Or(why, "node "+name+" is no longer fit ("+r.nodeProblem(ni, podModel{}, dc.req.Architecture)+")")
		default:
			keep = append(keep, ni)
		}
	}
	m := newPodModel(dc.req)
	if why == "" && len(keep) > 0 && m.fitPrefix(keep, len(keep), r.free) == len(keep) {
		return "", nil
	}
	if why == "" {
		why = "its nodes cannot hold it any more"
		if len(keep) == 0 {
			why = "it was pinned to no node"
		}
	}
	nodes := slices.Clone(keep)
	for _, o := range cr.cands {
		if ni := dc.rk.cands[o].node; !slices.Contains(keep, ni) {
			nodes = append(nodes, ni)
		}
	}
	if n := m.fitPrefix(nodes, len(keep), r.free); n > 0 {
		return why, nodes[:n]
	}
	return why, dc.rk.setNodes(cr) // the cluster's own node set holds it
}

// placeOn puts the decision on a cluster's node set.
func (r *round) placeOn(dc *decision, cr *clusterResult) {
	r.pin(dc, cr.cluster, dc.rk.setNodes(cr), nil)
}

// pin puts the decision on a set of nodes of a cluster and sets its pods
// aside there for the components decided after it, except on the nodes
// in running (where its pods already are).
func (r *round) pin(dc *decision, ci int, set []int32, running []string) {
	// Node indices follow name order within a cluster: sorting them sorts
	// the names, and the pods are set aside in the order Reserve uses.
	slices.Sort(set)
	names := make([]string, len(set))
	for i, ni := range set {
		names[i] = r.p.nodes[ni].Name
	}
	dc.out.Placement.Cluster, dc.out.Placement.Nodes = r.p.clusters[ci].Name, names
	for i, res := range spread(newPodModel(dc.req), set, r.free) {
		if !slices.Contains(running, names[i]) {
			r.adjust(set[i], fleet.Resources{}.Sub(res))
		}
	}
}

func (r *round) migrate(dc *decision, best *clusterResult) {
	r.placeOn(dc, best)
	dc.out.Action = ActionMigrate
	dc.out.Placement.From, dc.out.Placement.FromNodes = dc.cur.Cluster, slices.Clone(dc.cur.Nodes)
}

// finish sets the reason and explanation of a decision that changes
// something.
func (r *round) finish(dc *decision, chosen *clusterResult, summary string) Decision {
	dc.out.Placement.Reason = summary
	dc.out.Placement.Explanation = r.explain(dc, chosen.cluster, summary)
	return dc.out
}

// keep returns the current placement unchanged but for the facts that
// follow the application (generation, tier); summary explains it, "" for
// a migration in progress, which keeps its stored explanation.
func (r *round) keep(dc *decision, summary string) Decision {
	p := *dc.cur
	p.App, p.Tier, p.Generation = dc.out.Placement.App, dc.c.Tier, r.in.Generation
	p.Nodes, p.FromNodes = slices.Clone(p.Nodes), slices.Clone(p.FromNodes)
	if summary != "" {
		chosen := -1
		if ci, ok := r.p.byName[p.Cluster]; ok {
			chosen = ci
		}
		if dc.rk == nil {
			p.Explanation = &Explanation{Component: dc.c.Name, Tier: dc.c.Tier, Chosen: p.Cluster, Summary: summary, Criteria: criterionNames()}
		} else {
			p.Explanation = r.explain(dc, chosen, summary)
		}
	}
	dc.out.Action, dc.out.Placement = ActionKeep, p
	return dc.out
}

// pending leaves the component without a cluster. A component that was
// already pending for the same reason keeps its decision time, so "pending
// since" means something.
func (r *round) pending(dc *decision, why string) Decision {
	d := &dc.out
	d.Action = ActionPending
	d.Placement.Reason = why
	if cur := dc.cur; cur != nil && cur.Cluster == "" && cur.Reason == why && !cur.Decided.IsZero() {
		d.Placement.Decided = cur.Decided
	}
	if dc.rk != nil {
		d.Placement.Explanation = r.explain(dc, -1, why)
	} else {
		d.Placement.Explanation = &Explanation{Component: dc.c.Name, Tier: dc.c.Tier, Summary: why, Criteria: criterionNames()}
	}
	return *d
}

// giveBack credits the nodes a component runs on with its own use:
// their requested resources already count its pods, and without this a
// component filling its cluster would find that cluster "full" next round
// and move off it. Which node holds which pod is not known, so each pinned
// node may give back up to the component's whole (previous) total, never
// more than the node has requested. This errs towards staying, which is
// what hysteresis wants anyway: a component never leaves a cluster because
// of its own pods. If it grew and truly no longer fits, its pods stay
// Pending in the cluster, the lead marks it Failed after its timeout and
// it fails over.
func (r *round) giveBack(cluster string, nodes []string, old spec.Requirements) {
	ci, ok := r.p.byName[cluster]
	if !ok || cluster == "" || old.Total.Pods <= 0 {
		return
	}
	own := old.Total
	for _, name := range nodes {
		if ni, ok := r.p.nodeByName(ci, name); ok {
			req := r.p.nodes[ni].Requested
			c := fleet.Resources{
				MilliCPU:         max(min(own.MilliCPU, req.MilliCPU), 0),
				MemoryBytes:      max(min(own.MemoryBytes, req.MemoryBytes), 0),
				EphemeralStorage: max(min(own.EphemeralStorage, req.EphemeralStorage), 0),
				Pods:             max(min(own.Pods, req.Pods), 0),
			}
			r.adjust(ni, c)
			r.credited, r.credits = append(r.credited, ni), append(r.credits, c)
		}
	}
}

// takeBack undoes giveBack once the component is decided.
func (r *round) takeBack() {
	for i, ni := range r.credited {
		r.adjust(ni, fleet.Resources{}.Sub(r.credits[i]))
	}
	r.credited, r.credits = r.credited[:0], r.credits[:0]
}

// fillAddresses gives each placed component the endpoint of the cluster
// serving every other component. A migrating component is still served by
// its source until the lead finishes the move (make-before-break), so its
// address is the source's unless that cluster is down.
func (r *round) fillAddresses(ds []Decision) {
	serving := make(map[string]string, len(ds))
	for i := range ds {
		p := &ds[i].Placement
		at := p.Cluster
		if p.From != "" && !r.in.Down[p.From] {
			at = p.From
		}
		if ci, ok := r.p.byName[at]; ok && at != "" && r.p.clusters[ci].Endpoint != "" {
			serving[ds[i].Component] = r.p.clusters[ci].Endpoint
		}
	}
	for i := range ds {
		p := &ds[i].Placement
		p.Addresses = nil
		if p.Cluster == "" {
			continue
		}
		for comp, ep := range serving {
			if comp != ds[i].Component {
				if p.Addresses == nil {
					p.Addresses = make(map[string]string, len(serving))
				}
				p.Addresses[comp] = ep
			}
		}
	}
}

// Changed reports whether storing d's placement would change what old
// says: where the component runs or is moving, the generation it serves,
// the addresses it is given, or why it is pending. Explanations and
// decision times are left out, so a lead that stores only changed
// decisions does not rewrite every placement every round.
func (d Decision) Changed(old *Placement) bool {
	if old == nil {
		return true
	}
	p := &d.Placement
	return p.Cluster != old.Cluster || p.From != old.From || p.Generation != old.Generation || p.Tier != old.Tier ||
		!slices.Equal(p.Nodes, old.Nodes) || !slices.Equal(p.FromNodes, old.FromNodes) ||
		!maps.Equal(p.Addresses, old.Addresses) || (p.Cluster == "" && p.Reason != old.Reason)
}

func (dc *decision) note(ci int, s string) {
	if dc.notes == nil {
		dc.notes = map[int]string{}
	}
	dc.notes[ci] = s
}

func (r *round) name(cr *clusterResult) string { return r.p.clusters[cr.cluster].Name }

// gain is how much better best is than cur, relative to cur.
func gain(best, cur float64) float64 {
	if cur <= eps {
		if best > eps {
			return math.Inf(1)
		}
		return 0
	}
	return (best - cur) / cur
}
