package scheduler

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/scheduler/schedtest"
	"qonnect.io/qonnect/internal/spec"
)

// faults make about half the nodes of a random fleet unfit one way or another.
var faults = schedtest.Faults{NotReady: 0.15, Cordoned: 0.05, Pressure: 0.1, Stale: 0.1, BadLabel: 0.1, OtherArch: 0.1}

const seeds = 60

// randomInput is a random fleet and application with random current
// placements, clusters down, failures and exclusions, all from seed.
func randomInput(seed uint64) Input {
	cs, ns := schedtest.RandomFleet(seed, 12, 6, faults, now)
	app := schedtest.RandomApp(seed, "app")
	rng := rand.New(rand.NewPCG(seed, 99))
	in := Input{Now: now, App: app, Generation: 2, Clusters: cs, Nodes: ns,
		Down: map[string]bool{}, Failed: map[string]bool{}, Excluded: map[string]map[string]time.Time{}}
	for _, c := range cs {
		if rng.IntN(8) == 0 {
			in.Down[c.Name] = true
		}
	}
	for _, c := range app.Spec.Components {
		if rng.IntN(6) == 0 {
			in.Failed[c.Name] = true
		}
		if rng.IntN(3) == 0 {
			until := now.Add(time.Duration(rng.IntN(5)-1) * time.Minute)
			in.Excluded[c.Name] = map[string]time.Time{cs[rng.IntN(len(cs))].Name: until}
		}
		switch rng.IntN(4) {
		case 0: // not placed yet
		case 1:
			in.Current = append(in.Current, Placement{Component: c.Name, Reason: "earlier", Generation: 1})
		default:
			cl := cs[rng.IntN(len(cs))].Name
			p := Placement{Component: c.Name, Cluster: cl, Generation: 1, Decided: before, Nodes: []string{cl + "-0", cl + "-1"}}
			if rng.IntN(4) == 0 {
				from := cs[rng.IntN(len(cs))].Name
				p.From, p.FromNodes = from, []string{from + "-0"}
			}
			in.Current = append(in.Current, p)
		}
	}
	return in
}

// Whatever the facts: a component is never put on a node that is
// unhealthy, of the wrong architecture, too full or in a cluster that is
// down, of another tier or excluded; the node set holds the component;
// decisions are deterministic and explained.
func TestPropertySafe(t *testing.T) {
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			in := randomInput(seed)
			ds := Schedule(Config{}, in)
			if again := Schedule(Config{}, in); !reflect.DeepEqual(ds, again) {
				t.Fatal("the same input gave different decisions")
			}
			if len(ds) != len(in.App.Spec.Components) {
				t.Fatalf("%d decisions for %d components", len(ds), len(in.App.Spec.Components))
			}
			clusters := map[string]fleet.Cluster{}
			for _, c := range in.Clusters {
				clusters[c.Name] = c
			}
			nodes := map[string]fleet.Node{}
			for _, n := range in.Nodes {
				nodes[n.Cluster+"/"+n.Name] = n
			}
			current := map[string]Placement{}
			for _, p := range in.Current {
				current[p.Component] = p
			}
			for i, d := range ds {
				c := &in.App.Spec.Components[i]
				p := d.Placement
				if d.Component != c.Name || p.Component != c.Name || p.Generation != in.Generation {
					t.Fatalf("decision %d is %q gen %d, want %q gen %d", i, d.Component, p.Generation, c.Name, in.Generation)
				}
				if d.Action != ActionKeep && (p.Explanation == nil || p.Explanation.Summary == "") {
					t.Errorf("%s: %s without an explanation", c.Name, d.Action)
				}
				switch d.Action {
				case ActionPending:
					if p.Cluster != "" || p.Reason == "" {
						t.Errorf("%s: pending on %q with reason %q", c.Name, p.Cluster, p.Reason)
					}
					continue
				case ActionKeep:
					cur := current[c.Name]
					if p.Cluster != cur.Cluster || p.From != cur.From || !slices.Equal(p.Nodes, cur.Nodes) {
						t.Errorf("%s: keep changed %s%v into %s%v", c.Name, cur.Cluster, cur.Nodes, p.Cluster, p.Nodes)
					}
					// Kept where it should leave only when nowhere else can
					// take it: removing it would help nothing.
					if (in.Down[p.Cluster] || (in.Failed[c.Name] && cur.Cluster != "")) &&
						(p.Explanation == nil || !strings.Contains(p.Explanation.Summary, "although it should leave")) {
						t.Errorf("%s: kept on %s, which is down or where it failed, while another cluster could take it", c.Name, p.Cluster)
					}
					continue
				}
				// A new placement: everything about it must hold.
				req := mustRequirements(t, c)
				cl, ok := clusters[p.Cluster]
				switch {
				case !ok:
					t.Fatalf("%s: placed on unknown cluster %q", c.Name, p.Cluster)
				case cl.Tier != c.Tier:
					t.Errorf("%s: placed on %s of tier %s, wants %s", c.Name, p.Cluster, cl.Tier, c.Tier)
				case in.Down[p.Cluster]:
					t.Errorf("%s: placed on %s, which is down", c.Name, p.Cluster)
				case in.Excluded[c.Name][p.Cluster].After(now):
					t.Errorf("%s: placed on %s during its back-off", c.Name, p.Cluster)
				case d.ExcludeCluster == p.Cluster:
					t.Errorf("%s: failed over onto the cluster it left", c.Name)
				case len(p.Nodes) == 0:
					t.Errorf("%s: placed on no node", c.Name)
				}
				cur := current[c.Name]
				var pool fleet.Resources
				for _, name := range p.Nodes {
					n, ok := nodes[p.Cluster+"/"+name]
					if !ok {
						t.Fatalf("%s: unknown node %s/%s", c.Name, p.Cluster, name)
					}
					if why := health(&n, now, DefaultNodeStaleAfter); why != "" {
						t.Errorf("%s: placed on node %s: %s", c.Name, name, why)
					}
					if req.Architecture != "" && n.Architecture != req.Architecture {
						t.Errorf("%s: placed on %s node %s, wants %s", c.Name, n.Architecture, name, req.Architecture)
					}
					// Where the component already runs, its own pods are in
					// Requested; elsewhere the node must have the room.
					if p.Cluster != cur.Cluster && p.Cluster != cur.From {
						if ok, short := n.Free().Fits(req.LargestPod); !ok {
							t.Errorf("%s: node %s has too little %s for its largest pod", c.Name, name, short)
						}
						pool = pool.Add(n.Free())
					}
				}
				if p.Cluster != cur.Cluster && p.Cluster != cur.From && len(p.Nodes) > 0 {
					if ok, short := pool.Fits(req.Total); !ok {
						t.Errorf("%s: nodes %v have too little %s together", c.Name, p.Nodes, short)
					}
				}
			}
		})
	}
}

// Hysteresis, as the lead lives it: round after round, the agents report
// what each round placed (its pods now count as requested on its nodes),
// the lead finishes migrations and records exclusions.
//
// From nothing, the facts a round leaves are the ones it planned for, so
// nothing may move after the first round. From arbitrary placements,
// migrations free room where they leave and a later round may rightly use
// it; then every move must beat the margin, no component may come back to
// a cluster it left, and placements must settle within a few rounds.
func TestPropertyHysteresis(t *testing.T) {
	for _, fromScratch := range []bool{true, false} {
		for seed := range uint64(seeds) {
			t.Run(fmt.Sprintf("scratch %v seed %d", fromScratch, seed), func(t *testing.T) {
				in := randomInput(seed)
				// A migration in progress is left alone until the lead
				// finishes it, so only its next round would judge it: start
				// settled.
				in.Failed, in.Current = nil, finished(in.Current)
				if fromScratch {
					in.Current = nil
				}
				var ag agents
				ag.start(&in)
				left := map[string]map[string]bool{} // component → clusters it moved off
				const rounds, settleBy = 6, 3
				for round := range rounds {
					ds := Schedule(Config{}, in)
					changed := false
					for _, d := range ds {
						p := d.Placement
						if d.Action == ActionKeep || d.Action == ActionPending {
							continue
						}
						changed = changed || round > 0
						if round > 0 && d.Action == ActionFailover {
							t.Errorf("round %d: %s failed over with no failure", round, d.Component)
						}
						if left[d.Component][p.Cluster] {
							t.Errorf("round %d: %s came back to %s", round, d.Component, p.Cluster)
						}
						if d.Action == ActionMigrate || d.Action == ActionFailover {
							if left[d.Component] == nil {
								left[d.Component] = map[string]bool{}
							}
							from := p.From
							if d.Action == ActionFailover {
								from = d.ExcludeCluster
							}
							left[d.Component][from] = true
						}
						if d.Action == ActionMigrate {
							checkMargin(t, d)
						}
						if d.ExcludeCluster != "" {
							if in.Excluded[d.Component] == nil {
								in.Excluded[d.Component] = map[string]time.Time{}
							}
							in.Excluded[d.Component][d.ExcludeCluster] = d.ExcludeUntil
						}
					}
					if changed && (fromScratch || round >= settleBy) {
						t.Errorf("round %d changed placements with no new facts:\n%s", round, describe(ds))
					}
					in.Nodes = ag.report(in, ds)
					in.Current = finished(placements(ds))
				}
			})
		}
	}
}

// checkMargin: a migration off a cluster that could still take the
// component must beat it by more than the margin.
func checkMargin(t *testing.T, d Decision) {
	t.Helper()
	e := d.Placement.Explanation
	from := clusterScore(e, d.Placement.From)
	if from.Outcome != OutcomeLost {
		return // the old cluster could no longer take it
	}
	to := clusterScore(e, d.Placement.Cluster)
	if to.Score <= from.Score*(1+DefaultMargin) {
		t.Errorf("%s moved from %s (%.4f) to %s (%.4f): within the margin", d.Component, from.Cluster, from.Score, to.Cluster, to.Score)
	}
}

// agents stand for the clusters' agents and schedulers in the hysteresis
// test: they run what the lead assigns and report it as requested.
type agents struct {
	// shares are the resources each component's pods take, per node
	// (index into the Input's nodes).
	shares map[string]map[int]fleet.Resources
}

// start reports the pods of the placements the test starts from: a
// component that runs somewhere has its pods requested there.
func (a *agents) start(in *Input) {
	var ds []Decision
	for i := range in.Current {
		p := &in.Current[i]
		c := in.App.Component(p.Component)
		if c == nil || p.Cluster == "" {
			continue
		}
		req, err := spec.ComponentRequirements(c)
		if err != nil {
			panic(err)
		}
		p.Explanation = &Explanation{Requirements: req}
		ds = append(ds, Decision{Component: p.Component, Action: ActionPlace, Placement: *p})
	}
	in.Nodes = a.report(*in, ds)
}

// report returns the nodes as the agents report them once the lead has
// applied ds and finished every migration: a component that moved, was
// re-pinned or went pending has its pods gone from its old nodes, and its
// new pods are requested on its new nodes, spread as the scheduler sets
// them aside.
func (a *agents) report(in Input, ds []Decision) []fleet.Node {
	if a.shares == nil {
		a.shares = map[string]map[int]fleet.Resources{}
	}
	nodes := slices.Clone(in.Nodes)
	index := map[string]int32{}
	for i, n := range nodes {
		index[n.Cluster+"/"+n.Name] = int32(i)
	}
	for _, d := range ds {
		if d.Action == ActionKeep {
			continue
		}
		for i, r := range a.shares[d.Component] {
			nodes[i].Requested = nodes[i].Requested.Sub(r)
		}
		delete(a.shares, d.Component)
		p := d.Placement
		if p.Cluster == "" {
			continue
		}
		set := make([]int32, 0, len(p.Nodes))
		for _, name := range p.Nodes {
			if i, ok := index[p.Cluster+"/"+name]; ok {
				set = append(set, i)
			}
		}
		free := func(i int32) fleet.Resources { return nodes[i].Free() }
		a.shares[d.Component] = map[int]fleet.Resources{}
		for k, r := range spread(newPodModel(p.Explanation.Requirements), set, free) {
			nodes[set[k]].Requested = nodes[set[k]].Requested.Add(r)
			a.shares[d.Component][int(set[k])] = r
		}
	}
	return nodes
}

func describe(ds []Decision) string {
	s := ""
	for _, d := range ds {
		s += fmt.Sprintf("  %s %s %s: %s\n", d.Component, d.Action, d.Placement.Cluster, d.Placement.Reason)
	}
	return s
}

// Components that do not compete for room are placed as they would be
// alone: one component's decision never leaks into another's but through
// the room it takes.
func TestPropertyComponentsIndependent(t *testing.T) {
	for seed := range uint64(20) {
		cs, ns := schedtest.RandomFleet(seed, 12, 6, schedtest.Faults{}, now)
		app := schedtest.RandomApp(seed, "app")
		for i := range app.Spec.Components {
			app.Spec.Components[i] = schedtest.Component(app.Spec.Components[i].Name, app.Spec.Components[i].Tier, "10m", "1Mi", 1)
		}
		whole := Schedule(Config{}, Input{Now: now, App: app, Clusters: cs, Nodes: ns})
		for i, c := range app.Spec.Components {
			part := Schedule(Config{}, Input{Now: now, App: schedtest.App("app", app.Spec.QoS, c), Clusters: cs, Nodes: ns})[0]
			if part.Placement.Cluster != whole[i].Placement.Cluster || !slices.Equal(part.Placement.Nodes, whole[i].Placement.Nodes) {
				t.Errorf("seed %d %s: alone on %s, with the others on %s", seed, c.Name, part.Placement.Cluster, whole[i].Placement.Cluster)
			}
		}
	}
}

// A prepared fleet may be shared by concurrent Schedule calls (run with
// -race): tiers are built once, scratch memory is per call.
func TestConcurrentSchedule(t *testing.T) {
	cs, ns := schedtest.RandomFleet(5, 30, 10, faults, now)
	p := Prepare(Config{}, now, cs, ns)
	apps := make([]*spec.Application, 8)
	want := make([][]Decision, len(apps))
	for i := range apps {
		apps[i] = schedtest.RandomApp(uint64(i), fmt.Sprintf("app-%d", i))
		want[i] = Schedule(Config{}, Input{Now: now, App: apps[i], Clusters: cs, Nodes: ns})
	}
	var wg sync.WaitGroup
	for i := range apps {
		wg.Go(func() {
			for range 5 {
				if got := Schedule(Config{}, Input{Now: now, App: apps[i], Prepared: p}); !reflect.DeepEqual(got, want[i]) {
					t.Errorf("app %d: concurrent decisions differ", i)
					return
				}
			}
		})
	}
	wg.Wait()
}
