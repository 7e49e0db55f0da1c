package scheduler

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/scheduler/schedtest"
	"qonnect.io/qonnect/internal/spec"
)

var before = now.Add(-time.Hour)

// on is a stored placement of component comp on all three nodes of a
// paper-profile cluster, decided an hour ago.
func on(comp, cluster string) Placement {
	return Placement{App: "app", Component: comp, Cluster: cluster, Generation: 1, Decided: before,
		Nodes: []string{cluster + "-0", cluster + "-1", cluster + "-2"}}
}

// migrating is a placement moving from one cluster to another.
func migrating(comp, from, to string) Placement {
	p := on(comp, to)
	p.From, p.FromNodes = from, []string{from + "-0", from + "-1", from + "-2"}
	return p
}

func web(qos spec.QoS) *spec.Application {
	return schedtest.App("app", qos, schedtest.Component("web", fleet.TierFog, "1", "1Gi", 1))
}

func paperInput(app *spec.Application, current ...Placement) Input {
	cs, ns := schedtest.PaperFleet(now)
	return Input{Now: now, App: app, Generation: 1, Clusters: cs, Nodes: ns, Current: current}
}

func clusterScore(e *Explanation, cluster string) ClusterScore {
	for _, c := range e.Clusters {
		if c.Cluster == cluster {
			return c
		}
	}
	return ClusterScore{}
}

// Balanced, fog-energy scores .59375 and fog-cost .5625: 5.6% apart.
func TestHysteresis(t *testing.T) {
	tests := []struct {
		name    string
		margin  float64
		current string
		action  Action
		want    string
		summary string
	}{
		{"best stays", 0, "fog-energy", ActionKeep, "fog-energy", "kept fog-energy: still the best fog cluster (score 0.594)"},
		{"gain within the margin", 0, "fog-cost", ActionKeep, "fog-cost",
			"kept fog-cost (score 0.562): fog-energy scores 0.594, 5.6% better, not more than the margin of 10.0%"},
		{"gain above a smaller margin", 0.05, "fog-cost", ActionMigrate, "fog-energy",
			"moving from fog-cost to fog-energy: score 0.594 beats 0.562 by 5.6%, more than the margin of 5.0%"},
		{"large gain", 0, "fog-perf", ActionMigrate, "fog-energy",
			"moving from fog-perf to fog-energy: score 0.594 beats 0.344 by 72.7%, more than the margin of 10.0%"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cur := on("web", tc.current)
			d := Schedule(Config{Margin: tc.margin}, paperInput(web(schedtest.Balanced), cur))[0]
			p := d.Placement
			if d.Action != tc.action || p.Cluster != tc.want {
				t.Fatalf("%s on %s, want %s on %s: %s", d.Action, p.Cluster, tc.action, tc.want, p.Explanation.Summary)
			}
			if p.Explanation.Summary != tc.summary {
				t.Errorf("summary %q\nwant    %q", p.Explanation.Summary, tc.summary)
			}
			if p.Explanation.Chosen != tc.want || clusterScore(p.Explanation, tc.want).Outcome != OutcomeChosen {
				t.Errorf("explanation does not show %s chosen: %+v", tc.want, p.Explanation.Clusters)
			}
			switch d.Action {
			case ActionKeep:
				if !p.Decided.Equal(before) || p.From != "" || !slices.Equal(p.Nodes, cur.Nodes) {
					t.Errorf("keep changed the placement: %+v", p)
				}
			case ActionMigrate:
				if !p.Decided.Equal(now) || p.From != tc.current || !slices.Equal(p.FromNodes, cur.Nodes) {
					t.Errorf("migrate: decided %v from %q %v", p.Decided, p.From, p.FromNodes)
				}
			}
		})
	}
}

// A QoS change moves every component make-before-break; while the move
// is in progress, the placement is left alone.
func TestQoSChange(t *testing.T) {
	in := paperInput(schedtest.Bookinfo(schedtest.EnergyOnly))
	first := Schedule(Config{}, in)

	in.App, in.Generation, in.Current = schedtest.Bookinfo(schedtest.CostOnly), 2, placements(first)
	second := Schedule(Config{}, in)
	for i, d := range second {
		tier := in.App.Spec.Components[i].Tier
		from, to := schedtest.ClusterName(tier, schedtest.Energy), schedtest.ClusterName(tier, schedtest.Cost)
		if d.Action != ActionMigrate || d.Placement.Cluster != to || d.Placement.From != from || d.Placement.Generation != 2 {
			t.Fatalf("%s: %s %s from %q gen %d, want migrate %s from %s", d.Component, d.Action, d.Placement.Cluster, d.Placement.From, d.Placement.Generation, to, from)
		}
	}

	// Even back to energy-only: a move in progress is not disturbed.
	in.App, in.Generation, in.Current = schedtest.Bookinfo(schedtest.EnergyOnly), 3, placements(second)
	for i, d := range Schedule(Config{}, in) {
		want := second[i].Placement
		want.Generation = 3
		if d.Action != ActionKeep || !reflect.DeepEqual(d.Placement, want) {
			t.Fatalf("%s: %s %+v, want the migration kept as is", d.Component, d.Action, d.Placement)
		}
	}

	// Once the lead has finished the moves, the new placements stay.
	in.App, in.Generation, in.Current = schedtest.Bookinfo(schedtest.CostOnly), 2, finished(placements(second))
	for _, d := range Schedule(Config{}, in) {
		if d.Action != ActionKeep {
			t.Fatalf("%s: %s after the move finished: %s", d.Component, d.Action, d.Placement.Explanation.Summary)
		}
	}
}

func placements(ds []Decision) []Placement {
	out := make([]Placement, len(ds))
	for i, d := range ds {
		out[i] = d.Placement
	}
	return out
}

// finished is what the lead stores once every migration is done.
func finished(ps []Placement) []Placement {
	for i := range ps {
		ps[i].From, ps[i].FromNodes = "", nil
	}
	return ps
}

func TestFailover(t *testing.T) {
	allNotReady := func(in *Input) {
		for i := range in.Nodes {
			if in.Nodes[i].Cluster == "fog-energy" {
				in.Nodes[i].Ready = false
			}
		}
	}
	tests := []struct {
		name    string
		edit    func(in *Input)
		current Placement
		action  Action
		want    string
		from    string
		exclude string
		reason  string
	}{
		{"cluster down", func(in *Input) { in.Down = map[string]bool{"fog-energy": true} }, on("web", "fog-energy"),
			ActionFailover, "fog-cost", "", "fog-energy", "failed over from fog-energy (cluster fog-energy is down) to fog-cost"},
		{"component failed", func(in *Input) { in.Failed = map[string]bool{"web": true} }, on("web", "fog-energy"),
			ActionFailover, "fog-cost", "", "fog-energy", "failed over from fog-energy (web failed on fog-energy) to fog-cost"},
		{"cluster gone", func(in *Input) {
			in.Clusters = slices.DeleteFunc(in.Clusters, func(c fleet.Cluster) bool { return c.Name == "fog-energy" })
		},
			on("web", "fog-energy"), ActionFailover, "fog-cost", "", "fog-energy", "cluster fog-energy is no longer registered"},
		{"no healthy node", allNotReady, on("web", "fog-energy"),
			ActionFailover, "fog-cost", "", "fog-energy", "failed over from fog-energy (no node of fog-energy is healthy) to fog-cost"},
		{"failed elsewhere does not matter", func(in *Input) { in.Failed = map[string]bool{"db": true} }, on("web", "fog-energy"),
			ActionKeep, "fog-energy", "", "", ""},
		{"nowhere to go", func(in *Input) {
			in.Down = map[string]bool{"fog-energy": true, "fog-cost": true, "fog-perf": true}
		}, on("web", "fog-energy"), ActionKeep, "fog-energy", "", "",
			""},
		{"migration target down, source still runs it", func(in *Input) { in.Down = map[string]bool{"fog-energy": true} },
			migrating("web", "fog-perf", "fog-energy"), ActionFailover, "fog-cost", "fog-perf", "fog-energy", "failed over from fog-energy"},
		{"migration target failed, back to the source", func(in *Input) { in.Failed = map[string]bool{"web": true} },
			migrating("web", "fog-energy", "fog-cost"), ActionFailover, "fog-energy", "", "fog-cost", "to fog-energy"},
		{"migration source down: the move goes on", func(in *Input) { in.Down = map[string]bool{"fog-perf": true} },
			migrating("web", "fog-perf", "fog-energy"), ActionKeep, "fog-energy", "fog-perf", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := paperInput(web(schedtest.EnergyOnly), tc.current)
			tc.edit(&in)
			d := Schedule(Config{}, in)[0]
			p := d.Placement
			if d.Action != tc.action || p.Cluster != tc.want || p.From != tc.from {
				t.Fatalf("%s on %q from %q, want %s on %q from %q: %s", d.Action, p.Cluster, p.From, tc.action, tc.want, tc.from, p.Reason)
			}
			if d.ExcludeCluster != tc.exclude {
				t.Errorf("excludes %q, want %q", d.ExcludeCluster, tc.exclude)
			}
			if tc.exclude != "" && !d.ExcludeUntil.Equal(now.Add(DefaultBackoff)) {
				t.Errorf("excluded until %v, want now + %v", d.ExcludeUntil, DefaultBackoff)
			}
			if !strings.Contains(p.Reason, tc.reason) {
				t.Errorf("reason %q\nlacks  %q", p.Reason, tc.reason)
			}
			if tc.exclude != "" {
				if c := clusterScore(p.Explanation, tc.exclude); c.Cluster != "" && c.Outcome != OutcomeFiltered {
					t.Errorf("left cluster %s not filtered: %+v", tc.exclude, c)
				}
			}
		})
	}
}

// After a failover the cluster left behind is not chosen again during
// its back-off, even when it is back and the best; after it, it may be.
func TestBackoff(t *testing.T) {
	in := paperInput(web(schedtest.EnergyOnly), on("web", "fog-energy"))
	in.Down = map[string]bool{"fog-energy": true}
	d := Schedule(Config{Backoff: 10 * time.Minute}, in)[0]
	if d.Action != ActionFailover || d.ExcludeCluster != "fog-energy" {
		t.Fatalf("%s excluding %q", d.Action, d.ExcludeCluster)
	}
	in.Down, in.Current = nil, finished(placements([]Decision{d}))
	in.Excluded = map[string]map[string]time.Time{"web": {d.ExcludeCluster: d.ExcludeUntil}}
	for _, tc := range []struct {
		after  time.Duration
		action Action
		want   string
	}{
		{time.Minute, ActionKeep, "fog-cost"},
		{10*time.Minute - time.Nanosecond, ActionKeep, "fog-cost"},
		{10 * time.Minute, ActionMigrate, "fog-energy"},
	} {
		in.Now = now.Add(tc.after)
		for i := range in.Nodes {
			in.Nodes[i].Reported = in.Now
		}
		got := Schedule(Config{Backoff: 10 * time.Minute}, in)[0]
		if got.Action != tc.action || got.Placement.Cluster != tc.want {
			t.Errorf("after %v: %s on %s, want %s on %s", tc.after, got.Action, got.Placement.Cluster, tc.action, tc.want)
		}
	}
}

// A healthy cluster that no longer suits the component: it migrates, or
// stays if no other cluster can take it.
func TestCannotStay(t *testing.T) {
	tests := []struct {
		name   string
		app    *spec.Application
		edit   func(in *Input)
		action Action
		want   string
		reason string
	}{
		{"tier changed", schedtest.App("app", schedtest.EnergyOnly, schedtest.Component("web", fleet.TierEdge, "1", "1Gi", 1)), nil,
			ActionMigrate, "edge-energy", "moving from fog-energy (fog-energy is not in the edge tier) to edge-energy"},
		{"excluded", web(schedtest.EnergyOnly), func(in *Input) {
			in.Excluded = map[string]map[string]time.Time{"web": {"fog-energy": now.Add(time.Minute)}}
		}, ActionMigrate, "fog-cost", "moving from fog-energy (excluded after a failure until 2026-03-01 12:01:00 UTC) to fog-cost"},
		{"grew too big for every cluster", schedtest.App("app", schedtest.EnergyOnly, schedtest.Component("web", fleet.TierFog, "11", "1Gi", 1)), nil,
			ActionKeep, "fog-energy", "kept fog-energy although it no longer suits web (node fog-energy-0: 6 CPU free (needs 11 CPU)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := paperInput(tc.app, on("web", "fog-energy"))
			if tc.edit != nil {
				tc.edit(&in)
			}
			d := Schedule(Config{}, in)[0]
			if d.Action != tc.action || d.Placement.Cluster != tc.want {
				t.Fatalf("%s on %s, want %s on %s: %s", d.Action, d.Placement.Cluster, tc.action, tc.want, d.Placement.Explanation.Summary)
			}
			if s := d.Placement.Explanation.Summary; !strings.Contains(s, tc.reason) {
				t.Errorf("summary %q\nlacks   %q", s, tc.reason)
			}
			if d.Action == ActionMigrate && d.Placement.From != "fog-energy" {
				t.Errorf("from %q, want fog-energy", d.Placement.From)
			}
		})
	}
}

// A component that fills its cluster is not pushed off it by its own pods.
func TestOwnUseIsNotCountedAgainstItself(t *testing.T) {
	app := schedtest.App("app", schedtest.EnergyOnly, schedtest.Component("web", fleet.TierFog, "2500m", "1Gi", 3))
	in := paperInput(app, on("web", "fog-energy"))
	in.Current[0].Explanation = &Explanation{Requirements: mustRequirements(t, &app.Spec.Components[0])}
	for i := range in.Nodes {
		if in.Nodes[i].Cluster == "fog-energy" {
			// One pod of web each, plus 2.5 CPU of others: 1 CPU free.
			in.Nodes[i].Requested = fleet.Resources{MilliCPU: 5000, MemoryBytes: 2 << 30, Pods: 2}
		}
	}
	d := Schedule(Config{}, in)[0]
	if d.Action != ActionKeep {
		t.Fatalf("%s to %s: %s", d.Action, d.Placement.Cluster, d.Placement.Explanation.Summary)
	}
	// A newcomer of the same size does not fit there.
	in.Current = nil
	if d := Schedule(Config{}, in)[0]; d.Placement.Cluster == "fog-energy" {
		t.Fatalf("a new component was placed on the full cluster: %v", d.Placement.Nodes)
	}
}

func mustRequirements(t *testing.T, c *spec.Component) spec.Requirements {
	t.Helper()
	r, err := spec.ComponentRequirements(c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A pinned node that became unfit is replaced, on the same cluster.
func TestRepin(t *testing.T) {
	in := paperInput(web(schedtest.EnergyOnly), on("web", "fog-energy"))
	for i := range in.Nodes {
		if in.Nodes[i].Name == "fog-energy-1" {
			in.Nodes[i].Ready = false
		}
	}
	d := Schedule(Config{}, in)[0]
	p := d.Placement
	if d.Action != ActionPlace || p.Cluster != "fog-energy" || !slices.Equal(p.Nodes, []string{"fog-energy-0", "fog-energy-2"}) || p.From != "" {
		t.Fatalf("%s on %s %v from %q", d.Action, p.Cluster, p.Nodes, p.From)
	}
	if want := "re-pinned on fog-energy: node fog-energy-1 is no longer fit (not Ready)"; p.Reason != want || !p.Decided.Equal(now) {
		t.Errorf("reason %q decided %v, want %q at now", p.Reason, p.Decided, want)
	}

	// A healthy pinned node that has filled up is kept: the component's
	// pods run there.
	in = paperInput(web(schedtest.EnergyOnly), on("web", "fog-energy"))
	for i := range in.Nodes {
		if in.Nodes[i].Name == "fog-energy-1" {
			in.Nodes[i].Requested = in.Nodes[i].Allocatable
		}
	}
	if d := Schedule(Config{}, in)[0]; d.Action != ActionKeep {
		t.Fatalf("full pinned node: %s %v: %s", d.Action, d.Placement.Nodes, d.Placement.Reason)
	}

	// A component that grew beyond its nodes gets more, keeping its own.
	in = paperInput(schedtest.App("app", schedtest.EnergyOnly, schedtest.Component("web", fleet.TierFog, "2", "1Gi", 8)), on("web", "fog-energy"))
	in.Current[0].Nodes = []string{"fog-energy-2"}
	d = Schedule(Config{}, in)[0]
	if d.Action != ActionPlace || !slices.Contains(d.Placement.Nodes, "fog-energy-2") || len(d.Placement.Nodes) != 3 {
		t.Fatalf("grown: %s %v: %s", d.Action, d.Placement.Nodes, d.Placement.Reason)
	}
}

// Every placed component learns where every other one is served from,
// including those placed in the same call; a migrating one is still
// served by its source.
func TestAddresses(t *testing.T) {
	app := schedtest.Bookinfo(schedtest.EnergyOnly)
	app.Spec.Components = append(app.Spec.Components, schedtest.Component("huge", fleet.TierEdge, "64", "", 1))
	in := paperInput(app, migrating("reviews", "fog-perf", "fog-energy"))
	ds := byComponent(Schedule(Config{}, in))
	ep := schedtest.Endpoint
	want := map[string]string{
		"productpage": ep("cloud-energy"),
		"details":     ep("fog-energy"),
		"reviews":     ep("fog-perf"),
		"ratings":     ep("edge-energy"),
	}
	for comp, d := range ds {
		if comp == "huge" {
			if d.Action != ActionPending || d.Placement.Addresses != nil {
				t.Errorf("huge: %s with addresses %v", d.Action, d.Placement.Addresses)
			}
			continue
		}
		w := map[string]string{}
		for c, a := range want {
			if c != comp {
				w[c] = a
			}
		}
		if !reflect.DeepEqual(d.Placement.Addresses, w) {
			t.Errorf("%s: addresses %v, want %v", comp, d.Placement.Addresses, w)
		}
	}
}

// Components decided earlier in a call, and applications reserved earlier
// in a round, leave less room for the next.
func TestReservations(t *testing.T) {
	cs, ns := schedtest.PaperFleet(now)
	big := schedtest.Component("big", fleet.TierFog, "5", "1Gi", 5)     // fog-perf: 5 of its 6 slots of 5 CPU
	small := schedtest.Component("small", fleet.TierFog, "5", "1Gi", 2) // then only fits elsewhere

	t.Run("within a call", func(t *testing.T) {
		ds := byComponent(Schedule(Config{}, Input{Now: now, App: schedtest.App("app", schedtest.PerformanceOnly, big, small), Clusters: cs, Nodes: ns}))
		if ds["big"].Placement.Cluster != "fog-perf" || ds["small"].Placement.Cluster != "fog-energy" {
			t.Fatalf("big on %s, small on %s; want fog-perf, fog-energy", ds["big"].Placement.Cluster, ds["small"].Placement.Cluster)
		}
	})
	t.Run("across a round", func(t *testing.T) {
		p := Prepare(Config{}, now, cs, ns)
		for _, d := range Schedule(Config{}, Input{Now: now, App: schedtest.App("a", schedtest.PerformanceOnly, big), Prepared: p}) {
			p.Reserve(d)
		}
		d := Schedule(Config{}, Input{Now: now, App: schedtest.App("b", schedtest.PerformanceOnly, small), Prepared: p})[0]
		if d.Placement.Cluster != "fog-energy" {
			t.Fatalf("second app on %s, want fog-energy", d.Placement.Cluster)
		}
		// Without the reservation it would have gone to fog-perf.
		d = Schedule(Config{}, Input{Now: now, App: schedtest.App("b", schedtest.PerformanceOnly, small), Clusters: cs, Nodes: ns})[0]
		if d.Placement.Cluster != "fog-perf" {
			t.Fatalf("alone on %s, want fog-perf", d.Placement.Cluster)
		}
	})
}

// A component still pending for the same reason keeps its decision time.
func TestPendingSince(t *testing.T) {
	app := schedtest.App("app", schedtest.Balanced, schedtest.Component("web", fleet.TierFog, "64", "", 1))
	first := Schedule(Config{}, paperInput(app))[0]
	if first.Action != ActionPending || !first.Placement.Decided.Equal(now) {
		t.Fatalf("%s decided %v", first.Action, first.Placement.Decided)
	}
	in := paperInput(app, first.Placement)
	in.Now = now.Add(time.Minute)
	for i := range in.Nodes {
		in.Nodes[i].Reported = in.Now
	}
	second := Schedule(Config{}, in)[0]
	if second.Action != ActionPending || !second.Placement.Decided.Equal(now) || second.Changed(&first.Placement) {
		t.Fatalf("%s decided %v changed %v", second.Action, second.Placement.Decided, second.Changed(&first.Placement))
	}
	app.Spec.Components[0] = schedtest.Component("web", fleet.TierFog, "1", "", 1)
	third := Schedule(Config{}, in)[0]
	if third.Action != ActionPlace || !third.Placement.Decided.Equal(in.Now) {
		t.Fatalf("%s decided %v", third.Action, third.Placement.Decided)
	}
}

func TestDecisionChanged(t *testing.T) {
	base := on("web", "fog-energy")
	base.Addresses = map[string]string{"db": "x"}
	tests := []struct {
		name string
		edit func(p *Placement)
		want bool
	}{
		{"same", func(p *Placement) {}, false},
		{"explanation and time only", func(p *Placement) { p.Explanation, p.Decided = &Explanation{}, now }, false},
		{"cluster", func(p *Placement) { p.Cluster = "fog-cost" }, true},
		{"nodes", func(p *Placement) { p.Nodes = p.Nodes[:1] }, true},
		{"generation", func(p *Placement) { p.Generation++ }, true},
		{"from", func(p *Placement) { p.From = "fog-perf" }, true},
		{"addresses", func(p *Placement) { p.Addresses = map[string]string{"db": "y"} }, true},
		{"pending reason", func(p *Placement) { p.Cluster, p.Nodes, p.Reason = "", nil, "other" }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := base
			p.Nodes = slices.Clone(base.Nodes)
			tc.edit(&p)
			old := base
			if tc.name == "pending reason" {
				old.Cluster, old.Nodes, old.Reason = "", nil, "one"
			}
			if got := (Decision{Placement: p}).Changed(&old); got != tc.want {
				t.Errorf("Changed = %v, want %v", got, tc.want)
			}
		})
	}
	if !(Decision{}).Changed(nil) {
		t.Error("a first decision must count as a change")
	}
}
