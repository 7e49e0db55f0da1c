package scheduler

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/scheduler/schedtest"
	"qonnect.io/qonnect/internal/spec"
)

var now = schedtest.Now

// run schedules app over the fleet with nothing placed yet.
func run(t *testing.T, app *spec.Application, cs []fleet.Cluster, ns []fleet.Node) map[string]Decision {
	t.Helper()
	return byComponent(Schedule(Config{}, Input{Now: now, App: app, Generation: 1, Clusters: cs, Nodes: ns}))
}

func byComponent(ds []Decision) map[string]Decision {
	out := make(map[string]Decision, len(ds))
	for _, d := range ds {
		out[d.Component] = d
	}
	return out
}

func tierOf(app *spec.Application, comp string) fleet.Tier { return app.Component(comp).Tier }

// The paper's profile: each single-goal weighting picks, in every tier,
// the cluster of that flavour.
//
// Balanced picks the energy-flavoured cluster in every tier. In a tier the
// 9 candidates form three groups of three equal nodes, so on each
// criterion a group gets 1, 4 or 7 Borda points (beating 0, 3 or 6 nodes,
// ties counting half), 2.5 when two groups tie; scaled by 1/8:
//
//	            energy  price  cpu     memory  bandwidth  storage | perf     balanced
//	energy      .875    .5     .3125   .3125   .5         .5      | .40625   .59375
//	cost        .5      .875   .3125   .3125   .125       .5      | .3125    .5625
//	performance .125    .125   .875    .875    .875       .5      | .78125   .34375
//
// Energy-flavoured nodes are best on energy and second on both price and
// bandwidth; cost-flavoured ones are best on price but worst on bandwidth,
// which the energy ones beat. Performance counts once (the mean of its
// four capacity criteria), so the big nodes' strength does not swamp their
// being worst on both energy and price.
func TestPaperProfile(t *testing.T) {
	cs, ns := schedtest.PaperFleet(now)
	tests := []struct {
		name    string
		qos     spec.QoS
		flavour schedtest.Flavour
		score   float64 // of the chosen cluster
	}{
		{"energy only", schedtest.EnergyOnly, schedtest.Energy, 0.875},
		{"cost only", schedtest.CostOnly, schedtest.Cost, 0.875},
		{"performance only", schedtest.PerformanceOnly, schedtest.Performance, 0.78125},
		{"balanced", schedtest.Balanced, schedtest.Energy, 0.59375},
		// Energy and cost clusters mirror each other on energy and price
		// (.875/.5 against .5/.875): a tie at .6875, broken by name.
		{"energy and cost tie", spec.QoS{Energy: 1, Cost: 1}, schedtest.Cost, 0.6875},
		{"mostly performance", spec.QoS{Energy: 0.2, Cost: 0.2, Performance: 1}, schedtest.Performance, (0.125*0.2 + 0.125*0.2 + 0.78125) / 1.4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			app := schedtest.Bookinfo(tc.qos)
			for comp, d := range run(t, app, cs, ns) {
				want := schedtest.ClusterName(tierOf(app, comp), tc.flavour)
				if d.Action != ActionPlace || d.Placement.Cluster != want {
					t.Fatalf("%s: %s on %q, want place on %s (%s)", comp, d.Action, d.Placement.Cluster, want, d.Placement.Reason)
				}
				if got := d.Placement.Nodes; !reflect.DeepEqual(got, []string{want + "-0", want + "-1", want + "-2"}) {
					t.Errorf("%s: nodes %v, want all three of %s", comp, got, want)
				}
				e := d.Placement.Explanation
				if e == nil || e.Chosen != want || len(e.Nodes) != 9 || len(e.Clusters) != 3 {
					t.Fatalf("%s: explanation %+v", comp, e)
				}
				if c := e.Clusters[0]; c.Outcome != OutcomeChosen || math.Abs(c.Score-tc.score) > 1e-9 {
					t.Errorf("%s: chosen %+v, want score %v", comp, c, tc.score)
				}
			}
		})
	}
}

// The Borda points behind the balanced case, node by node.
func TestPaperProfileBordaPoints(t *testing.T) {
	cs, ns := schedtest.PaperFleet(now)
	d := run(t, schedtest.Bookinfo(schedtest.Balanced), cs, ns)["details"]
	want := map[string]map[string]float64{
		"fog-energy": {CriterionEnergy: 7, CriterionPrice: 4, CriterionCPU: 2.5, CriterionMemory: 2.5, CriterionBandwidth: 4, CriterionStorage: 4},
		"fog-cost":   {CriterionEnergy: 4, CriterionPrice: 7, CriterionCPU: 2.5, CriterionMemory: 2.5, CriterionBandwidth: 1, CriterionStorage: 4},
		"fog-perf":   {CriterionEnergy: 1, CriterionPrice: 1, CriterionCPU: 7, CriterionMemory: 7, CriterionBandwidth: 7, CriterionStorage: 4},
	}
	e := d.Placement.Explanation
	if math.Abs(e.Mean-0.5) > 1e-9 || !e.Balanced {
		t.Errorf("mean %v balanced %v, want 0.5 and true", e.Mean, e.Balanced)
	}
	for _, n := range e.Nodes {
		if !reflect.DeepEqual(n.Ranks, want[n.Cluster]) {
			t.Errorf("%s ranks %v, want %v", n.Node, n.Ranks, want[n.Cluster])
		}
		if keep := n.Cluster != "fog-perf"; n.Kept != keep {
			t.Errorf("%s kept %v, want %v (mean 0.5)", n.Node, n.Kept, keep)
		}
	}
	for i, c := range []string{"fog-energy", "fog-cost", "fog-perf"} {
		if got := e.Clusters[i].Cluster; got != c {
			t.Errorf("clusters[%d] = %s, want %s (best first)", i, got, c)
		}
	}
}

// A cluster of many weaker nodes must not beat one of fewer, stronger
// nodes because of its size, and equal nodes must tie whatever their count.
func TestSizeDoesNotWin(t *testing.T) {
	perf := schedtest.Profiles[schedtest.Performance]
	weak := perf
	weak.MilliCPU, weak.MemoryBytes, weak.Bandwidth = 4000, 4_000_000_000, "10000000000"
	tests := []struct {
		name  string
		qos   spec.QoS
		fleet map[string][]fleet.Node
		want  string
	}{
		{"many weak against few strong, performance", schedtest.PerformanceOnly, map[string][]fleet.Node{
			"a-many-weak":  schedtest.Nodes("a-many-weak", 12, weak, now),
			"b-few-strong": schedtest.Nodes("b-few-strong", 2, perf, now),
		}, "b-few-strong"},
		{"many weak against few strong, balanced", schedtest.Balanced, map[string][]fleet.Node{
			"a-many-weak":  schedtest.Nodes("a-many-weak", 12, weak, now),
			"b-few-strong": schedtest.Nodes("b-few-strong", 2, perf, now),
		}, "b-few-strong"},
		{"equal nodes tie whatever their number, first name wins", schedtest.Balanced, map[string][]fleet.Node{
			"a-few":  schedtest.Nodes("a-few", 2, perf, now),
			"z-many": schedtest.Nodes("z-many", 20, perf, now),
		}, "a-few"},
		{"equal nodes, the many-node cluster named first wins only by name", schedtest.Balanced, map[string][]fleet.Node{
			"a-many": schedtest.Nodes("a-many", 20, perf, now),
			"z-few":  schedtest.Nodes("z-few", 2, perf, now),
		}, "a-many"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cs []fleet.Cluster
			var ns []fleet.Node
			for name, nodes := range tc.fleet {
				cs = append(cs, schedtest.Cluster(name, fleet.TierFog, now))
				ns = append(ns, nodes...)
			}
			app := schedtest.App("app", tc.qos, schedtest.Component("web", fleet.TierFog, "1", "1Gi", 2))
			d := run(t, app, cs, ns)["web"]
			if d.Placement.Cluster != tc.want {
				t.Fatalf("placed on %q, want %s: %s", d.Placement.Cluster, tc.want, d.Placement.Reason)
			}
			e := d.Placement.Explanation
			if len(e.Clusters) == 2 && e.Clusters[0].Score < e.Clusters[1].Score-eps {
				t.Errorf("chosen scores below the loser: %+v", e.Clusters)
			}
		})
	}
}

// Components too big for a tier stay Pending with a reason a person can act on.
func TestFitPending(t *testing.T) {
	cs, ns := schedtest.PaperFleet(now)
	tests := []struct {
		name string
		comp spec.Component
		want []string
	}{
		{"pod bigger than any node", schedtest.Component("reviews", fleet.TierFog, "12", "1Gi", 1),
			[]string{"no fog cluster has a node with 12 CPU free for reviews", "fog-perf: node fog-perf-0: 10 CPU free (needs 12 CPU), node fog-perf-1"}},
		{"memory per pod", schedtest.Component("reviews", fleet.TierFog, "1", "20Gi", 1),
			[]string{"no fog cluster has a node with 20 GiB memory free for reviews"}},
		{"too many pods for every cluster", schedtest.Component("reviews", fleet.TierFog, "6", "1Gi", 4),
			[]string{"no fog cluster has room for the 4 pods of reviews", "fog-perf: its 3 candidate nodes hold only 3 of its 4 pods"}},
		{"total bigger than the tier's clusters", schedtest.Component("reviews", fleet.TierEdge, "5", "1Gi", 7),
			[]string{"no edge cluster has 35 CPU free for reviews", "its 3 candidate nodes have 30 CPU free together (needs 35 CPU)"}},
		{"architecture", func() spec.Component {
			c := schedtest.Component("reviews", fleet.TierFog, "1", "1Gi", 1)
			tmpl := c.Resources[0]["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
			tmpl["nodeSelector"] = map[string]any{"kubernetes.io/arch": "arm64"}
			return c
		}(), []string{"no fog cluster has a healthy arm64 node for reviews", "architecture amd64 (needs arm64)"}},
		{"no cluster of the tier", schedtest.Component("reviews", "moon", "1", "1Gi", 1),
			[]string{"no moon cluster is registered for reviews"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := run(t, schedtest.App("app", schedtest.Balanced, tc.comp), cs, ns)["reviews"]
			if d.Action != ActionPending || !d.Placement.Pending() || len(d.Placement.Nodes) != 0 {
				t.Fatalf("got %s on %q, want pending", d.Action, d.Placement.Cluster)
			}
			for _, w := range tc.want {
				if !strings.Contains(d.Placement.Reason, w) {
					t.Errorf("reason %q\nlacks %q", d.Placement.Reason, w)
				}
			}
			if d.Placement.Explanation == nil || d.Placement.Explanation.Summary != d.Placement.Reason {
				t.Errorf("explanation %+v should carry the reason", d.Placement.Explanation)
			}
		})
	}
}

// A cluster whose free room is only there in crumbs does not fit, and one
// whose kept nodes are too small grows its node set with weaker nodes.
func TestFitNodeSet(t *testing.T) {
	t.Run("crumbs do not fit", func(t *testing.T) {
		// a: 4 nodes with 1.5 CPU free each (6 in all, but 1 CPU pods fit
		// one per node); b: one node with 4 CPU free.
		perf := schedtest.Profiles[schedtest.Performance]
		a := schedtest.Nodes("a", 4, perf, now)
		for i := range a {
			a[i].Requested.MilliCPU = 8500
		}
		b := schedtest.Nodes("b", 1, schedtest.Profiles[schedtest.Cost], now)
		b[0].Requested.MilliCPU = 2000
		cs := []fleet.Cluster{schedtest.Cluster("a", fleet.TierFog, now), schedtest.Cluster("b", fleet.TierFog, now)}
		app := schedtest.App("app", schedtest.PerformanceOnly, schedtest.Component("web", fleet.TierFog, "1", "", 5))
		d := run(t, app, cs, append(a, b...))["web"]
		if d.Action != ActionPending || !strings.Contains(d.Placement.Reason, "a: its 4 candidate nodes hold only 4 of its 5 pods") {
			t.Fatalf("%s on %q: %s", d.Action, d.Placement.Cluster, d.Placement.Reason)
		}
	})
	t.Run("set grows below the mean when the kept nodes are too small", func(t *testing.T) {
		// a-0 is big and alone above the mean; the 4 pods of 4 CPU need
		// a-1 and a-2 as well (2 + 1 + 1).
		perf := schedtest.Profiles[schedtest.Performance]
		small := perf
		small.MilliCPU = 6000
		ns := schedtest.Nodes("a", 3, small, now)
		ns[0] = schedtest.Node("a", "a-0", perf, now)
		cs := []fleet.Cluster{schedtest.Cluster("a", fleet.TierFog, now)}
		app := schedtest.App("app", schedtest.PerformanceOnly, schedtest.Component("web", fleet.TierFog, "4", "", 4))
		d := run(t, app, cs, ns)["web"]
		if d.Placement.Cluster != "a" || len(d.Placement.Nodes) != 3 {
			t.Fatalf("%s %v: %s", d.Placement.Cluster, d.Placement.Nodes, d.Placement.Reason)
		}
		if r := d.Placement.Explanation.Clusters[0].Reason; !strings.Contains(r, "its 1 kept node with room cannot hold the component, so 2 nodes below the mean join; scored by that set") {
			t.Errorf("chosen cluster reason %q", r)
		}
	})
}

// Unfit nodes are never candidates, and the explanation says why.
func TestNodeFilters(t *testing.T) {
	energy := schedtest.Profiles[schedtest.Energy]
	tests := []struct {
		name   string
		break_ func(n *fleet.Node)
		reason string
	}{
		{"not ready", func(n *fleet.Node) { n.Ready = false }, "not Ready"},
		{"cordoned", func(n *fleet.Node) { n.Unschedulable = true }, "cordoned (unschedulable)"},
		{"memory pressure", func(n *fleet.Node) { n.MemoryPressure = true }, "memory pressure"},
		{"disk pressure", func(n *fleet.Node) { n.DiskPressure = true }, "disk pressure"},
		{"pid pressure", func(n *fleet.Node) { n.PIDPressure = true }, "PID pressure"},
		{"stale", func(n *fleet.Node) { n.Reported = now.Add(-3 * time.Minute) }, "last reported 3m0s ago (stale after 2m0s)"},
		{"never reported", func(n *fleet.Node) { n.Reported = time.Time{} }, "never reported"},
		{"full", func(n *fleet.Node) { n.Requested = n.Allocatable }, "0 CPU free (needs 1 CPU)"},
		{"no pod slots", func(n *fleet.Node) { n.Requested.Pods = n.Allocatable.Pods }, "0 pod slots free (needs 1 pod slot)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// "best" would win on energy; its only node is broken.
			best := schedtest.Node("best", "best-0", energy, now)
			tc.break_(&best)
			worse := energy
			worse.Energy = "0.003"
			ns := []fleet.Node{best, schedtest.Node("worse", "worse-0", worse, now)}
			cs := []fleet.Cluster{schedtest.Cluster("best", fleet.TierEdge, now), schedtest.Cluster("worse", fleet.TierEdge, now)}
			app := schedtest.App("app", schedtest.EnergyOnly, schedtest.Component("web", fleet.TierEdge, "1", "1Gi", 1))
			d := run(t, app, cs, ns)["web"]
			if d.Placement.Cluster != "worse" {
				t.Fatalf("placed on %q, want worse", d.Placement.Cluster)
			}
			var got ClusterScore
			for _, c := range d.Placement.Explanation.Clusters {
				if c.Cluster == "best" {
					got = c
				}
			}
			if got.Outcome != OutcomeFiltered || got.Reason != "node best-0: "+tc.reason {
				t.Errorf("best: %+v, want filtered with %q", got, tc.reason)
			}
		})
	}
}

// A missing or malformed label is reported and ranks worst; it is never
// guessed.
func TestBadLabels(t *testing.T) {
	energy := schedtest.Profiles[schedtest.Energy]
	good := schedtest.Node("a", "a-0", energy, now)
	missing := schedtest.Node("b", "b-0", energy, now)
	delete(missing.Labels, fleet.LabelEnergy)
	malformed := schedtest.Node("c", "c-0", energy, now)
	malformed.Labels[fleet.LabelEnergy] = "low"
	negative := schedtest.Node("d", "d-0", energy, now)
	negative.Labels[fleet.LabelEnergy] = "-1"
	quantity := schedtest.Node("e", "e-0", energy, now)
	quantity.Labels[fleet.LabelBandwidth] = "100G"
	var cs []fleet.Cluster
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		cs = append(cs, schedtest.Cluster(n, fleet.TierCloud, now))
	}
	// "b" sorts first among the bad ones: it would win every tie by name.
	app := schedtest.App("app", schedtest.EnergyOnly, schedtest.Component("web", fleet.TierCloud, "1", "", 1))
	d := run(t, app, cs, []fleet.Node{good, missing, malformed, negative, quantity})["web"]
	if d.Placement.Cluster != "a" {
		t.Fatalf("placed on %q, want a (good and e tie, a first)", d.Placement.Cluster)
	}
	nodes := map[string]NodeScore{}
	for _, n := range d.Placement.Explanation.Nodes {
		nodes[n.Node] = n
	}
	for node, problem := range map[string]string{
		"b-0": "label qonnect.io/energy is missing",
		"c-0": `label qonnect.io/energy="low" is not a number`,
		"d-0": `label qonnect.io/energy="-1" is not a non-negative number`,
	} {
		n := nodes[node]
		if !reflect.DeepEqual(n.Problems, []string{problem}) {
			t.Errorf("%s problems %q, want %q", node, n.Problems, problem)
		}
		if _, ok := n.Values[CriterionEnergy]; ok || n.Ranks[CriterionEnergy] != 0 || n.Score != 0 {
			t.Errorf("%s: value %v rank %v score %v, want no value, rank 0, score 0", node, n.Values, n.Ranks[CriterionEnergy], n.Score)
		}
	}
	if got := nodes["e-0"].Values[CriterionBandwidth]; got != 100e9 {
		t.Errorf("bandwidth label 100G read as %v", got)
	}
}

// Filtered clusters: down, excluded during back-off, and back after it.
func TestClusterFilters(t *testing.T) {
	cs, ns := schedtest.PaperFleet(now)
	app := schedtest.App("app", schedtest.EnergyOnly, schedtest.Component("web", fleet.TierFog, "1", "1Gi", 1))
	tests := []struct {
		name     string
		in       Input
		want     string
		filtered string
	}{
		{"down", Input{Down: map[string]bool{"fog-energy": true}}, "fog-cost", "cluster down (heartbeats stopped)"},
		{"excluded", Input{Excluded: map[string]map[string]time.Time{"web": {"fog-energy": now.Add(time.Second)}}}, "fog-cost",
			"excluded after a failure until 2026-03-01 12:00:01 UTC"},
		{"exclusion over", Input{Excluded: map[string]map[string]time.Time{"web": {"fog-energy": now}}}, "fog-energy", ""},
		{"other component excluded", Input{Excluded: map[string]map[string]time.Time{"db": {"fog-energy": now.Add(time.Hour)}}}, "fog-energy", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			in.Now, in.App, in.Clusters, in.Nodes = now, app, cs, ns
			d := Schedule(Config{}, in)[0]
			if d.Placement.Cluster != tc.want {
				t.Fatalf("placed on %q, want %s", d.Placement.Cluster, tc.want)
			}
			for _, c := range d.Placement.Explanation.Clusters {
				if c.Cluster == "fog-energy" && tc.filtered != "" && (c.Outcome != OutcomeFiltered || c.Reason != tc.filtered) {
					t.Errorf("fog-energy: %+v, want filtered: %s", c, tc.filtered)
				}
			}
		})
	}
}

// The same facts in any order give the same decisions, and a prepared
// fleet gives the same as a one-shot call.
func TestDeterministic(t *testing.T) {
	cs, ns := schedtest.RandomFleet(7, 30, 8, schedtest.Faults{NotReady: 0.1, Pressure: 0.05, BadLabel: 0.05}, now)
	app := schedtest.RandomApp(3, "app")
	want := Schedule(Config{}, Input{Now: now, App: app, Generation: 1, Clusters: cs, Nodes: ns})
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5 {
		cs2, ns2 := append([]fleet.Cluster(nil), cs...), append([]fleet.Node(nil), ns...)
		rng.Shuffle(len(cs2), func(i, j int) { cs2[i], cs2[j] = cs2[j], cs2[i] })
		rng.Shuffle(len(ns2), func(i, j int) { ns2[i], ns2[j] = ns2[j], ns2[i] })
		in := Input{Now: now, App: app, Generation: 1, Clusters: cs2, Nodes: ns2}
		if i%2 == 1 {
			in.Prepared, in.Clusters, in.Nodes = Prepare(Config{}, now, cs2, ns2), nil, nil
		}
		if got := Schedule(Config{}, in); !reflect.DeepEqual(got, want) {
			t.Fatalf("shuffle %d: decisions differ", i)
		}
	}
}

// An explanation is data: it survives JSON unchanged.
func TestExplanationJSON(t *testing.T) {
	cs, ns := schedtest.PaperFleet(now)
	for _, d := range Schedule(Config{}, Input{Now: now, App: schedtest.Bookinfo(schedtest.Balanced), Generation: 1, Clusters: cs, Nodes: ns}) {
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		var back Decision
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, d) {
			t.Errorf("%s: decision changed through JSON", d.Component)
		}
	}
}

func TestGoalWeights(t *testing.T) {
	tests := []struct {
		qos      spec.QoS
		want     [numGoals]float64
		balanced bool
	}{
		{spec.QoS{}, [numGoals]float64{1. / 3, 1. / 3, 1. / 3}, true},
		{spec.QoS{Energy: 1}, [numGoals]float64{1, 0, 0}, false},
		{spec.QoS{Energy: 0.5, Cost: 0.5}, [numGoals]float64{0.5, 0.5, 0}, false},
		{spec.QoS{Energy: 0.2, Cost: 0.2, Performance: 0.6}, [numGoals]float64{0.2, 0.2, 0.6}, false},
		{spec.QoS{Energy: math.NaN(), Cost: -1}, [numGoals]float64{1. / 3, 1. / 3, 1. / 3}, true},
	}
	for _, tc := range tests {
		w, b := goalWeights(tc.qos)
		for g := range w {
			if math.Abs(w[g]-tc.want[g]) > 1e-12 || b != tc.balanced {
				t.Errorf("goalWeights(%+v) = %v %v, want %v %v", tc.qos, w, b, tc.want, tc.balanced)
				break
			}
		}
	}
}

func TestFormatting(t *testing.T) {
	tests := []struct{ got, want string }{
		{amount("cpu", fleet.Resources{MilliCPU: 2000}), "2 CPU"},
		{amount("cpu", fleet.Resources{MilliCPU: 1500}), "1.5 CPU"},
		{amount("cpu", fleet.Resources{MilliCPU: 250}), "0.25 CPU"},
		{amount("memory", fleet.Resources{MemoryBytes: 512 << 20}), "512 MiB memory"},
		{amount("memory", fleet.Resources{MemoryBytes: 7_200_000_000}), "6.71 GiB memory"},
		{amount("ephemeral-storage", fleet.Resources{EphemeralStorage: 100}), "100 B ephemeral storage"},
		{amount("pods", fleet.Resources{Pods: 1}), "1 pod slot"},
		{capList([]string{"a", "b", "c", "d", "e"}, 3, "node", ", "), "a, b, c, and 2 more nodes"},
		{pct(0.056), "5.6%"},
		{pct(math.Inf(1)), "far more"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// Requests that cannot be read leave a new component pending and a
// running one where it is; no application, no decisions.
func TestBadInput(t *testing.T) {
	if ds := Schedule(Config{}, Input{Now: now}); ds != nil {
		t.Fatalf("no application gave %v", ds)
	}
	app := schedtest.App("app", schedtest.Balanced, schedtest.Component("web", fleet.TierFog, "lots", "", 1))
	cs, ns := schedtest.PaperFleet(now)
	d := Schedule(Config{}, Input{Now: now, App: app, Clusters: cs, Nodes: ns})[0]
	if d.Action != ActionPending || !strings.HasPrefix(d.Placement.Reason, "cannot read the resource requests of web: ") {
		t.Errorf("new: %s %q", d.Action, d.Placement.Reason)
	}
	cur := Placement{Component: "web", Cluster: "fog-cost", Nodes: []string{"fog-cost-0"}, Generation: 1}
	d = Schedule(Config{}, Input{Now: now, App: app, Clusters: cs, Nodes: ns, Current: []Placement{cur}, Generation: 2})[0]
	if d.Action != ActionKeep || d.Placement.Cluster != "fog-cost" || d.Placement.Generation != 2 ||
		!strings.HasPrefix(d.Placement.Explanation.Summary, "cannot read the resource requests of web: ") {
		t.Errorf("running: %s on %s gen %d: %+v", d.Action, d.Placement.Cluster, d.Placement.Generation, d.Placement.Explanation)
	}
}
