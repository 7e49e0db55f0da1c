package loop

import (
	"testing"
	"time"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/lead/kb"
	"qonnect.io/qonnect/lead/liveness"
)

// After every lead was down for minutes, the nodes' last replicated
// reports are old; a new leader must not take them for stale facts before
// the agents had one grace period to report again.
func TestNewFleetNodeGrace(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	old := now.Add(-10 * time.Minute)
	st := &kb.State{
		Clusters: map[string]*fleet.Cluster{"edge": {Name: "edge", Tier: fleet.TierEdge}},
		Nodes: map[string]map[string]*fleet.Node{"edge": {
			"n0": {Cluster: "edge", Name: "n0", Ready: true, Reported: old},
		}},
	}
	if got := NewFleet(st, nil).Nodes[0].Reported; !got.Equal(old) {
		t.Fatalf("without a tracker, reported = %v, want the replicated %v", got, old)
	}
	live := liveness.New(now)
	if got := NewFleet(st, live).Nodes[0].Reported; !got.Equal(now) {
		t.Fatalf("reported = %v, want the grace start %v", got, now)
	}
	later := now.Add(5 * time.Second)
	live.SeenNodes("edge", later)
	if got := NewFleet(st, live).Nodes[0].Reported; !got.Equal(later) {
		t.Fatalf("reported = %v, want the live report %v", got, later)
	}
}
