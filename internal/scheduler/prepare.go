package scheduler

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"qonnect.io/qonnect/internal/fleet"
)

// Prepared is the fleet indexed for scheduling: clusters grouped by tier,
// node facts parsed and health-checked once, and the Borda points of each
// tier's healthy nodes counted once. A decision then only filters nodes,
// weighs three goal scores per node and scores clusters, which is what
// keeps a round of a thousand applications well under a second. A tier is
// indexed the first time a decision needs it.
//
// Build one per round with Prepare and pass it in Input.Prepared. Schedule
// only reads it, so concurrent Schedule calls may share it; Reserve must
// not run concurrently with them.
type Prepared struct {
	now        time.Time
	staleAfter time.Duration
	clusters   []clusterFacts
	byName     map[string]int
	nodes      []nodeFacts
	tiers      map[fleet.Tier]*tierIndex
	// reserved is what Reserve has set aside per node this round, on top
	// of what the nodes report as requested.
	reserved []fleet.Resources
	scratch  sync.Pool
}

type clusterFacts struct {
	fleet.Cluster
	// nodes are every reported node of the cluster, by name: node indices
	// follow (cluster, name) order.
	nodes []int32
	// lo, hi are the cluster's range in its tier's healthy list.
	lo, hi int
}

// nodeFacts is what a decision reads about a node, kept small: a round
// goes over thousands of them for every component.
type nodeFacts struct {
	*fleet.Node
	cluster int32
	// missing has bit c set when criterion c has no value (see problem).
	missing uint8
	// unhealthy says why the node can host nothing, whatever the
	// component; "" when it is healthy.
	unhealthy string
	values    [numCriteria]float64
}

// problem says why criterion c has no value on the node, or "".
func (n *nodeFacts) problem(c int) string {
	if n.missing&(1<<c) == 0 {
		return ""
	}
	_, why := criteria[c].read(n.Node)
	return why
}

// tierIndex holds the healthy nodes of one tier and their Borda points.
type tierIndex struct {
	once     sync.Once
	clusters []int // indices into Prepared.clusters, by name
	// healthy are node indices grouped by cluster (in cluster order), by
	// name within a cluster: a position in this list is a "tier position".
	healthy []int32
	// points[pos][c] are the Borda points of the node at pos on criterion
	// c, counted over every healthy node of the tier; goals[pos] are its
	// scaled scores per goal, and goalMean their means over the tier.
	points   [][numCriteria]float64
	goals    [][numGoals]float64
	goalMean [numGoals]float64
}

// Prepare indexes the fleet as seen at now; node facts older than
// cfg.NodeStaleAfter are stale. Nodes of clusters that are not registered
// are ignored. Input order does not matter: the same facts give the same
// index. The nodes are copied; their label maps are not, and must not
// change while the Prepared is in use.
func Prepare(cfg Config, now time.Time, clusters []fleet.Cluster, nodes []fleet.Node) *Prepared {
	cfg = cfg.withDefaults()
	p := &Prepared{now: now, staleAfter: cfg.NodeStaleAfter, byName: make(map[string]int, len(clusters)), tiers: map[fleet.Tier]*tierIndex{}}

	cs := slices.Clone(clusters)
	slices.SortStableFunc(cs, func(a, b fleet.Cluster) int { return cmp.Compare(a.Name, b.Name) })
	for _, c := range cs {
		if _, dup := p.byName[c.Name]; dup || c.Name == "" {
			continue
		}
		p.byName[c.Name] = len(p.clusters)
		p.clusters = append(p.clusters, clusterFacts{Cluster: c})
	}

	// Bucket the nodes by cluster, then sort each (small) bucket by name:
	// cheaper than sorting the whole fleet by two strings.
	own := slices.Clone(nodes)
	buckets := make([][]int32, len(p.clusters))
	for i := range own {
		if ci, ok := p.byName[own[i].Cluster]; ok {
			buckets[ci] = append(buckets[ci], int32(i))
		}
	}
	p.nodes = make([]nodeFacts, 0, len(own))
	for ci, b := range buckets {
		slices.SortStableFunc(b, func(x, y int32) int { return cmp.Compare(own[x].Name, own[y].Name) })
		for k, i := range b {
			if k > 0 && own[i].Name == own[b[k-1]].Name {
				continue // a duplicate report: the first one stands
			}
			p.clusters[ci].nodes = append(p.clusters[ci].nodes, int32(len(p.nodes)))
			p.nodes = append(p.nodes, nodeFacts{Node: &own[i], cluster: int32(ci)})
		}
	}
	p.reserved = make([]fleet.Resources, len(p.nodes))
	for ci := range p.clusters {
		t := p.tiers[p.clusters[ci].Tier]
		if t == nil {
			t = &tierIndex{}
			p.tiers[p.clusters[ci].Tier] = t
		}
		t.clusters = append(t.clusters, ci)
	}
	return p
}

// tier returns the index of a tier, building it on first use; nil when no
// cluster is of that tier.
func (p *Prepared) tier(name fleet.Tier) *tierIndex {
	t := p.tiers[name]
	if t != nil {
		t.once.Do(func() { p.build(t) })
	}
	return t
}

// build reads the facts of a tier's nodes and counts their points.
func (p *Prepared) build(t *tierIndex) {
	for _, ci := range t.clusters {
		c := &p.clusters[ci]
		c.lo = len(t.healthy)
		for _, ni := range c.nodes {
			nf := &p.nodes[ni]
			nf.unhealthy = health(nf.Node, p.now, p.staleAfter)
			for k, cr := range criteria {
				v, why := cr.read(nf.Node)
				if why != "" {
					nf.missing |= 1 << k
				}
				nf.values[k] = v
			}
			if nf.unhealthy == "" {
				t.healthy = append(t.healthy, ni)
			}
		}
		c.hi = len(t.healthy)
	}
	t.count(p.nodes)
}

// count gives every healthy node of the tier its Borda points: per
// criterion, how many of the tier's healthy nodes it beats, ties counting
// half (so points do not depend on how ties are broken); a node without a
// value gets 0 and the others beat it. Points are then scaled to [0,1] by
// the number of nodes minus one and averaged per goal.
//
// Why the tier's healthy nodes and not only the component's candidates
// (those with room for it right now): a Borda count depends on which
// nodes are counted, since one node more or less shifts everyone's
// points. Free room changes with every pod that comes or goes anywhere,
// so counting over candidates made a cluster's score move when unrelated
// pods landed on other clusters, by more than any sane margin on a small
// tier; placements then moved with no real change (TestPropertyHysteresis
// found it). Health, labels and capacity change rarely and mean something
// when they do. Room still decides everything that is placed: a node
// without room for the component is never in a node set, and a cluster
// whose nodes with room cannot hold it is filtered out.
func (t *tierIndex) count(nodes []nodeFacts) {
	n := len(t.healthy)
	t.points = make([][numCriteria]float64, n)
	t.goals = make([][numGoals]float64, n)
	type entry struct {
		key float64 // higher is better; -Inf: no value
		pos int32
	}
	order := make([]entry, n)
	for c, cr := range criteria {
		for pos, ni := range t.healthy {
			nf := &nodes[ni]
			key := nf.values[c]
			switch {
			case nf.missing&(1<<c) != 0:
				key = math.Inf(-1)
			case !cr.higherIsBetter:
				key = -key
			}
			order[pos] = entry{key, int32(pos)}
		}
		// Worst first; the stable order of equal keys does not matter,
		// since ties share their points.
		slices.SortFunc(order, func(a, b entry) int { return cmp.Compare(a.key, b.key) })
		beaten := 0
		for i := 0; i < n; {
			j := i + 1
			for j < n && order[j].key == order[i].key {
				j++
			}
			pts := float64(beaten) + float64(j-i-1)/2
			if math.IsInf(order[i].key, -1) {
				pts = 0 // no value: worst, whatever the others
			}
			for _, e := range order[i:j] {
				t.points[e.pos][c] = pts
			}
			beaten += j - i
			i = j
		}
	}
	for pos := range n {
		nf := &nodes[t.healthy[pos]]
		for c, cr := range criteria {
			var s float64
			switch {
			case nf.missing&(1<<c) != 0:
			case n == 1:
				s = 1 // alone, and with a value: nothing beats it
			default:
				s = t.points[pos][c] / float64(n-1)
			}
			t.goals[pos][cr.goal] += s / float64(criteriaPerGoal[cr.goal])
		}
		for g := range numGoals {
			t.goalMean[g] += t.goals[pos][g] / float64(n)
		}
	}
}

// health says why a node can host nothing, or "" when it can. Staleness
// comes first: when facts are old, the other facts are not to be trusted.
func health(n *fleet.Node, now time.Time, staleAfter time.Duration) string {
	switch {
	case n.Reported.IsZero():
		return "never reported"
	case now.Sub(n.Reported) > staleAfter:
		return fmt.Sprintf("last reported %s ago (stale after %s)", now.Sub(n.Reported).Round(time.Second), staleAfter)
	case !n.Ready:
		return "not Ready"
	case n.Unschedulable:
		return "cordoned (unschedulable)"
	case n.MemoryPressure:
		return "memory pressure"
	case n.DiskPressure:
		return "disk pressure"
	case n.PIDPressure:
		return "PID pressure"
	}
	return ""
}

// Reserve sets aside on the prepared fleet what a decision starts: later
// Schedule calls in the same round see those nodes with less free room,
// so a round of many applications does not pile them all onto the same
// nodes before the agents report. Keep and Pending decisions reserve
// nothing (what already runs is in the nodes' requested resources). A
// re-pin on the same cluster is counted twice until the next report,
// which errs on the side of not overfilling.
func (p *Prepared) Reserve(d Decision) {
	pl := &d.Placement
	if d.Action == ActionKeep || d.Action == ActionPending || pl.Cluster == "" || pl.Explanation == nil {
		return
	}
	ci, ok := p.byName[pl.Cluster]
	if !ok {
		return
	}
	set := make([]int32, 0, len(pl.Nodes))
	for _, name := range pl.Nodes {
		if ni, ok := p.nodeByName(ci, name); ok {
			set = append(set, ni)
		}
	}
	free := func(ni int32) fleet.Resources { return p.nodes[ni].Free().Sub(p.reserved[ni]) }
	for i, r := range spread(newPodModel(pl.Explanation.Requirements), set, free) {
		p.reserved[set[i]] = p.reserved[set[i]].Add(r)
	}
}

func (p *Prepared) nodeByName(ci int, name string) (int32, bool) {
	ns := p.clusters[ci].nodes
	i, ok := slices.BinarySearchFunc(ns, name, func(ni int32, name string) int { return cmp.Compare(p.nodes[ni].Name, name) })
	if !ok {
		return -1, false
	}
	return ns[i], true
}
