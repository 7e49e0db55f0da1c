package scheduler

import (
	"fmt"
	"testing"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/scheduler/schedtest"
	"qonnect.io/qonnect/internal/spec"
)

// Benchmarks, run with
//
//	go test -run '^$' -bench . -benchmem ./internal/scheduler/
//
// Targets on one core: one decision over 20,000 nodes in under 20 ms, a
// round of 1,000 applications over 5,000 nodes in under a second. The
// Prototype benchmarks run the paper prototype's method on the same input.

const nodesPerCluster = 20

// benchFaults are a fleet's usual few sick nodes and bad labels.
var benchFaults = schedtest.Faults{NotReady: 0.02, Pressure: 0.02, Stale: 0.01, BadLabel: 0.02}

var decisionSizes = []int{9, 100, 1000}

// oneComponent is the application of a single decision: a component of
// three pods that most clusters can take, balanced weights.
func oneComponent() *spec.Application {
	return schedtest.App("app", schedtest.Balanced, schedtest.Component("web", fleet.TierFog, "500m", "512Mi", 3))
}

// BenchmarkDecision is one Schedule call from scratch: the fleet indexed,
// one component decided and explained.
func BenchmarkDecision(b *testing.B) {
	for _, n := range decisionSizes {
		cs, ns := schedtest.RandomFleet(1, n, nodesPerCluster, benchFaults, now)
		app := oneComponent()
		b.Run(fmt.Sprintf("clusters=%d/nodes=%d", n, len(ns)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d := Schedule(Config{}, Input{Now: now, App: app, Clusters: cs, Nodes: ns}); d[0].Action != ActionPlace {
					b.Fatal(d[0].Placement.Reason)
				}
			}
		})
	}
}

// BenchmarkDecisionPrepared is one decision over a fleet already indexed,
// as each decision of a round is.
func BenchmarkDecisionPrepared(b *testing.B) {
	for _, n := range decisionSizes {
		cs, ns := schedtest.RandomFleet(1, n, nodesPerCluster, benchFaults, now)
		app := oneComponent()
		p := Prepare(Config{}, now, cs, ns)
		b.Run(fmt.Sprintf("clusters=%d/nodes=%d", n, len(ns)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Schedule(Config{}, Input{Now: now, App: app, Prepared: p})
			}
		})
	}
}

func BenchmarkDecisionPrototype(b *testing.B) {
	for _, n := range decisionSizes {
		cs, ns := schedtest.RandomFleet(1, n, nodesPerCluster, benchFaults, now)
		app := oneComponent()
		b.Run(fmt.Sprintf("clusters=%d/nodes=%d", n, len(ns)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				prototypeSchedule(app, cs, ns)
			}
		})
	}
}

// roundInput is 1,000 random applications (1–5 components, 3 on average)
// over 250 clusters of 20 nodes.
func roundInput() ([]fleet.Cluster, []fleet.Node, []*spec.Application) {
	cs, ns := schedtest.RandomFleet(2, 250, nodesPerCluster, benchFaults, now)
	apps := make([]*spec.Application, 1000)
	for i := range apps {
		apps[i] = schedtest.RandomApp(uint64(i), fmt.Sprintf("app-%d", i))
	}
	return cs, ns, apps
}

// BenchmarkRound is what the leader does every round: index the fleet,
// decide every application and set aside what each one starts.
func BenchmarkRound(b *testing.B) {
	cs, ns, apps := roundInput()
	b.ReportAllocs()
	placed, comps := 0, 0
	for b.Loop() {
		placed, comps = 0, 0
		p := Prepare(Config{}, now, cs, ns)
		for _, app := range apps {
			for _, d := range Schedule(Config{}, Input{Now: now, App: app, Prepared: p}) {
				p.Reserve(d)
				comps++
				if d.Placement.Cluster != "" {
					placed++
				}
			}
		}
	}
	b.ReportMetric(float64(comps), "components/round")
	b.ReportMetric(float64(placed), "placed/round")
}

func BenchmarkRoundPrototype(b *testing.B) {
	cs, ns, apps := roundInput()
	b.ReportAllocs()
	for b.Loop() {
		for _, app := range apps {
			prototypeSchedule(app, cs, ns)
		}
	}
}
