package fleetview

import (
	"math"
	"testing"
	"time"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/scheduler"
	"qonnect.io/qonnect/internal/spec"
)

func app(placements []scheduler.Placement, statuses []fleet.ComponentStatus, comps ...string) *apiv1.App {
	a := &apiv1.App{Spec: spec.Application{Metadata: spec.Metadata{Name: "a"}}, Generation: 2, Placements: placements, Statuses: statuses}
	for _, c := range comps {
		a.Spec.Spec.Components = append(a.Spec.Spec.Components, spec.Component{Name: c, Tier: fleet.TierCloud})
	}
	return a
}

func TestComponentsAndStatus(t *testing.T) {
	p := func(comp, cluster, from string, gen int64) scheduler.Placement {
		return scheduler.Placement{App: "a", Component: comp, Cluster: cluster, From: from, Generation: gen}
	}
	s := func(comp, cluster string, phase fleet.Phase, gen int64) fleet.ComponentStatus {
		return fleet.ComponentStatus{App: "a", Component: comp, Cluster: cluster, Phase: phase, Generation: gen}
	}
	cases := []struct {
		name   string
		app    *apiv1.App
		phases []fleet.Phase
		status string
	}{
		{"all healthy", app([]scheduler.Placement{p("x", "c1", "", 2)}, []fleet.ComponentStatus{s("x", "c1", fleet.PhaseHealthy, 2)}, "x"),
			[]fleet.Phase{fleet.PhaseHealthy}, StatusHealthy},
		{"healthy at an older generation is progressing", app([]scheduler.Placement{p("x", "c1", "", 2)}, []fleet.ComponentStatus{s("x", "c1", fleet.PhaseHealthy, 1)}, "x"),
			[]fleet.Phase{fleet.PhaseProgressing}, StatusProgressing},
		{"status of another cluster is ignored", app([]scheduler.Placement{p("x", "c1", "", 2)}, []fleet.ComponentStatus{s("x", "c2", fleet.PhaseHealthy, 2)}, "x"),
			[]fleet.Phase{fleet.PhasePending}, StatusProgressing},
		{"unplaced is pending", app(nil, nil, "x", "y"), []fleet.Phase{fleet.PhasePending, fleet.PhasePending}, StatusPending},
		{"migrating", app([]scheduler.Placement{p("x", "c1", "c0", 2)}, []fleet.ComponentStatus{s("x", "c1", fleet.PhaseHealthy, 2)}, "x"),
			[]fleet.Phase{fleet.PhaseHealthy}, StatusMigrating},
		{"failed wins", app([]scheduler.Placement{p("x", "c1", "", 2), p("y", "", "", 2)}, []fleet.ComponentStatus{s("x", "c1", fleet.PhaseFailed, 2)}, "x", "y"),
			[]fleet.Phase{fleet.PhaseFailed, fleet.PhasePending}, StatusFailed},
		{"a placement the spec dropped is listed last", app([]scheduler.Placement{p("old", "c1", "", 1), p("x", "c1", "", 2)}, []fleet.ComponentStatus{s("x", "c1", fleet.PhaseHealthy, 2), s("old", "c1", fleet.PhaseRemoving, 1)}, "x"),
			[]fleet.Phase{fleet.PhaseHealthy, fleet.PhaseRemoving}, StatusProgressing},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			comps := Components(tc.app)
			if len(comps) != len(tc.phases) {
				t.Fatalf("%d components, want %d", len(comps), len(tc.phases))
			}
			for i, c := range comps {
				if c.Phase != tc.phases[i] {
					t.Errorf("%s: phase %s, want %s", c.Component, c.Phase, tc.phases[i])
				}
			}
			if got := AppOf(tc.app).Status; got != tc.status {
				t.Errorf("status %s, want %s", got, tc.status)
			}
		})
	}
}

func TestFormatting(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{MilliCPU(6000), "6"}, {MilliCPU(500), "500m"}, {MilliCPU(0), "0"},
		{Bytes(512), "512"}, {Bytes(7 << 30), "7Gi"}, {Bytes(6656 << 20), "6.5Gi"}, {Bytes(300 << 30), "300Gi"},
		{Bandwidth(52.5e9), "52.5Gbit/s"}, {Bandwidth(5e9), "5Gbit/s"}, {Bandwidth(math.NaN()), "-"},
		{Number(0.0024042), "0.0024042"}, {Number(math.NaN()), "-"},
		{QoS(spec.QoS{}), "balanced"}, {QoS(spec.QoS{Energy: 1, Cost: 0.25}), "energy=1 cost=0.25 performance=0"},
		{Age(time.Unix(100, 0), time.Time{}), "<unknown>"}, {Age(time.Unix(100, 0), time.Unix(200, 0)), "0s"},
		{Age(time.Unix(7300, 0), time.Unix(100, 0)), "120m"},
		{CriterionValue(scheduler.CriterionMemory, 7<<30), "7Gi"}, {CriterionValue(scheduler.CriterionCPU, 9.5), "9500m"}, {CriterionValue(scheduler.CriterionCPU, 6), "6"}, {CriterionValue(scheduler.CriterionEnergy, 0.5), "0.5"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestClustersOf(t *testing.T) {
	node := func(cluster, name, energy string, ready bool) fleet.Node {
		return fleet.Node{Cluster: cluster, Name: name, Ready: ready, Labels: map[string]string{fleet.LabelEnergy: energy},
			Allocatable: fleet.Resources{MilliCPU: 4000}, Requested: fleet.Resources{MilliCPU: 1000}}
	}
	cs := ClustersOf([]apiv1.ClusterInfo{
		{Cluster: fleet.Cluster{Name: "e", Tier: fleet.TierEdge}, Alive: true, Nodes: 2, ReadyNodes: 1},
		{Cluster: fleet.Cluster{Name: "c", Tier: fleet.TierCloud}, Alive: false},
	}, []fleet.Node{node("e", "1", "1", true), node("e", "2", "3", false), node("e", "3", "bad", true)})
	if cs[0].Name != "c" || cs[1].Name != "e" {
		t.Fatalf("order: %s, %s (want cloud first)", cs[0].Name, cs[1].Name)
	}
	if cs[0].Health() != "Down" || cs[1].Health() != "Degraded" {
		t.Errorf("health %s %s", cs[0].Health(), cs[1].Health())
	}
	// The malformed label is skipped, not read as zero; only ready nodes add capacity.
	if cs[1].Energy != 2 || cs[1].Allocatable.MilliCPU != 8000 || cs[1].Free.MilliCPU != 6000 {
		t.Errorf("summary %+v", cs[1])
	}
	if !math.IsNaN(cs[0].Price) {
		t.Errorf("price of a cluster without nodes: %v", cs[0].Price)
	}
}

func TestLeadsOf(t *testing.T) {
	no := false
	ls := LeadsOf(&apiv1.RaftStatus{Leader: "b", Members: []apiv1.Member{
		{ID: "c", Suffrage: "Nonvoter"}, {ID: "b", Suffrage: "Voter"}, {ID: "a", Suffrage: "Voter", Reachable: &no},
	}})
	got := []string{ls[0].ID + ":" + ls[0].State, ls[1].ID + ":" + ls[1].State, ls[2].ID + ":" + ls[2].State}
	want := []string{"b:Leader", "a:Unreachable", "c:Nonvoter"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("leads %v, want %v", got, want)
			break
		}
	}
}
