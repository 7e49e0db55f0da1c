package scheduler

import (
	"fmt"
	"testing"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/scheduler/schedtest"
)

// On a tier of hundreds of clusters an explanation lists a bounded number
// of them, always the chosen and the current one, and counts the rest.
func TestExplanationListsBoundedClusters(t *testing.T) {
	var cs []fleet.Cluster
	var ns []fleet.Node
	for i := range 100 {
		name := fmt.Sprintf("fog-%03d", i)
		cs = append(cs, schedtest.Cluster(name, fleet.TierFog, now))
		ns = append(ns, schedtest.Nodes(name, 2, schedtest.Profiles[schedtest.Cost], now)...)
	}
	app := schedtest.App("app", schedtest.CostOnly, schedtest.Component("web", fleet.TierFog, "100m", "64Mi", 1))
	cur := Placement{App: "app", Component: "web", Tier: fleet.TierFog, Cluster: "fog-099", Nodes: []string{"fog-099-0"}, Generation: 1}
	d := Schedule(Config{ExplainClusters: 10}, Input{Now: now, App: app, Generation: 1, Clusters: cs, Nodes: ns, Current: []Placement{cur}})[0]
	e := d.Placement.Explanation
	if e == nil {
		t.Fatal("no explanation")
	}
	if len(e.Clusters) > 12 || len(e.Clusters)+e.OmittedClusters != 100 {
		t.Fatalf("%d clusters listed, %d omitted; want at most 12 listed and 100 in all", len(e.Clusters), e.OmittedClusters)
	}
	listed := map[string]bool{}
	for _, c := range e.Clusters {
		listed[c.Cluster] = true
	}
	if !listed[d.Placement.Cluster] || !listed["fog-099"] {
		t.Fatalf("the chosen (%s) or the current (fog-099) cluster is not listed: %v", d.Placement.Cluster, listed)
	}
}
