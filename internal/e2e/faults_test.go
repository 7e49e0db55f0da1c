package e2e

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/scenario"
	"qonnect.io/qonnect/internal/spec"
)

// testFailover stops the cluster that runs reviews: reviews must become
// healthy on another fog cluster, the stopped one must not be chosen again
// during its back-off even once it is back, and its stale copy must go.
func testFailover(t *testing.T, e *env) {
	ctx := context.Background()
	a, err := e.c.GetApp(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	victim := scenario.PlacementOf(a)["reviews"]
	t0 := time.Now()
	if err := e.f.StopCluster(ctx, victim); err != nil {
		t.Fatal(err)
	}
	restarted := false
	defer func() {
		if !restarted {
			_ = e.f.StartCluster(ctx, victim)
		}
	}()
	var moved string
	err = scenario.Until(ctx, 2*time.Minute, "reviews healthy away from "+victim, func(ctx context.Context) (bool, string, error) {
		a, err := e.c.GetApp(ctx, app)
		if err != nil {
			return false, err.Error(), nil
		}
		moved = scenario.PlacementOf(a)["reviews"]
		if moved == victim {
			return false, "still on " + victim, nil
		}
		ok, why := scenario.Healthy(a, scenario.Placement{"reviews": moved})
		return ok, why, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("failover: reviews %s → %s, healthy after %s", victim, moved, time.Since(t0).Round(time.Millisecond))

	if err := e.f.StartCluster(ctx, victim); err != nil {
		t.Fatal(err)
	}
	restarted = true
	// Its agent comes back and learns reviews is no longer assigned there:
	// the stale copy goes.
	err = scenario.Until(ctx, time.Minute, "stale reviews removed from "+victim, func(ctx context.Context) (bool, string, error) {
		w, err := scenario.WorkloadOn(ctx, e.f, victim, app, app, "reviews")
		if err != nil {
			return false, err.Error(), nil
		}
		return len(w.Pods) == 0, fmt.Sprintf("%d pods left", len(w.Pods)), nil
	})
	if err != nil {
		t.Error(err)
	}
	// The QoS still favours the victim, but it is excluded for its back-off:
	// reviews must stay where it went.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		a, err := e.c.GetApp(ctx, app)
		if err == nil && scenario.PlacementOf(a)["reviews"] == victim {
			t.Fatalf("reviews went back to %s during its back-off", victim)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// testReelection kills the leader ten times; each time a new leader is
// elected, an application applied right after is placed, and no
// acknowledged write is lost.
func testReelection(t *testing.T, e *env) {
	ctx := context.Background()
	var acked []string
	var elections []time.Duration
	for round := 0; round < 10; round++ {
		leader, err := scenario.Leader(ctx, e.f, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if err := e.f.KillLead(leader); err != nil {
			t.Fatal(err)
		}
		next, err := scenario.NewLeader(ctx, e.f, leader, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		elections = append(elections, time.Since(t0))
		name := fmt.Sprintf("probe-%d", round)
		if _, err := e.c.ApplyApp(ctx, probeApp(name), false); err != nil {
			t.Fatalf("round %d: apply right after the election of %s: %v", round, next, err)
		}
		acked = append(acked, name)
		if _, err := scenario.WaitHealthy(ctx, e.c, name, nil, time.Minute); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := e.f.StartLead(leader); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("elections after SIGKILL of the leader: %v", elections)
	for _, name := range acked {
		if _, err := e.c.GetApp(ctx, name); err != nil {
			t.Errorf("acknowledged application %s lost: %v", name, err)
		}
		if _, err := e.c.DeleteApp(ctx, name); err != nil {
			t.Errorf("delete %s: %v", name, err)
		}
	}
}

// probeApp is a one-component application for the fault loops.
func probeApp(name string) *spec.Application {
	return &spec.Application{
		APIVersion: spec.APIVersion, Kind: spec.Kind, Metadata: spec.Metadata{Name: name},
		Spec: spec.AppSpec{QoS: spec.QoS{Cost: 1}, Components: []spec.Component{{
			Name: "cfg", Tier: "edge",
			Resources: []spec.Object{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name}, "data": map[string]any{"round": name}}},
		}}},
	}
}

// testPartition cuts the leader off from the other two leads.
func testPartition(t *testing.T, e *env) {
	ctx := context.Background()
	old, err := scenario.Leader(ctx, e.f, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.f.PartitionLead(old); err != nil {
		t.Fatal(err)
	}
	healed := false
	defer func() {
		if !healed {
			_ = e.f.Heal()
		}
	}()
	cut, err := scenario.LeadClient(e.f, old)
	if err != nil {
		t.Fatal(err)
	}
	var majority []string
	for _, p := range e.f.State().Leads {
		if p.ID != old {
			majority = append(majority, p.ID)
		}
	}
	var newLeader string
	err = scenario.Until(ctx, 30*time.Second, "the majority elects a leader", func(ctx context.Context) (bool, string, error) {
		for _, id := range majority {
			c, _ := scenario.LeadClient(e.f, id)
			if st, err := c.RaftStatus(ctx); err == nil && st.State == "Leader" {
				newLeader = id
				return true, "", nil
			}
		}
		return false, "no leader among " + fmt.Sprint(majority), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The cut-off lead steps down and never acknowledges a write.
	err = scenario.Until(ctx, 30*time.Second, old+" steps down", func(ctx context.Context) (bool, string, error) {
		st, err := cut.RaftStatus(ctx)
		if err != nil {
			return false, err.Error(), nil
		}
		return st.State != "Leader", st.State, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	_, err = cut.ApplyApp(wctx, probeApp("cut-off"), false)
	cancel()
	if err == nil {
		t.Fatalf("the cut-off lead %s acknowledged a write", old)
	}
	// The majority keeps placing.
	mc, _ := scenario.LeadClient(e.f, newLeader)
	if _, err := mc.ApplyApp(ctx, probeApp("majority"), false); err != nil {
		t.Fatal(err)
	}
	if _, err := scenario.WaitHealthy(ctx, mc, "majority", nil, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := e.f.Heal(); err != nil {
		t.Fatal(err)
	}
	healed = true
	if err := sameKB(ctx, e, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.GetApp(ctx, "cut-off"); err == nil {
		t.Error("the write the cut-off lead did not acknowledge appeared after heal")
	}
	if _, err := e.c.DeleteApp(ctx, "majority"); err != nil {
		t.Error(err)
	}
}

// sameKB waits until every lead has applied the same log and has the same KB hash.
func sameKB(ctx context.Context, e *env, timeout time.Duration) error {
	return scenario.Until(ctx, timeout, "identical knowledge bases", func(ctx context.Context) (bool, string, error) {
		var first string
		var idx uint64
		for i, p := range e.f.State().Leads {
			c, _ := scenario.LeadClient(e.f, p.ID)
			st, err := c.RaftStatus(ctx)
			if err != nil {
				return false, p.ID + ": " + err.Error(), nil
			}
			if i == 0 {
				first, idx = st.KBHash, st.AppliedIndex
				continue
			}
			if st.KBHash != first || st.AppliedIndex != idx {
				return false, fmt.Sprintf("%s at %d %s, first at %d %s", p.ID, st.AppliedIndex, st.KBHash, idx, first), nil
			}
		}
		return true, "", nil
	})
}

// testRestartAll stops every lead and starts them again from disk.
func testRestartAll(t *testing.T, e *env) {
	ctx := context.Background()
	before, err := e.c.GetApp(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	pods := podUIDs(t, e, before)
	leads := e.f.State().Leads
	for _, p := range leads {
		if err := e.f.StopLead(p.ID); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range leads {
		if err := e.f.StartLead(p.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := scenario.Leader(ctx, e.f, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := sameKB(ctx, e, time.Minute); err != nil {
		t.Fatal(err)
	}
	after, err := scenario.WaitHealthy(ctx, e.c, app, scenario.PlacementOf(before), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if after.Generation != before.Generation {
		t.Errorf("generation %d → %d across the restart", before.Generation, after.Generation)
	}
	if got := podUIDs(t, e, after); fmt.Sprint(got) != fmt.Sprint(pods) {
		t.Errorf("workloads restarted:\nbefore %v\nafter  %v", pods, got)
	}
}

// podUIDs lists the pods of every component where it is placed: a pod
// that restarted or was recreated has another UID.
func podUIDs(t *testing.T, e *env, a *apiv1.App) []string {
	t.Helper()
	var out []string
	for _, p := range a.Placements {
		w, err := scenario.WorkloadOn(context.Background(), e.f, p.Cluster, a.Spec.NamespaceOf(), app, p.Component)
		if err != nil {
			t.Fatal(err)
		}
		for _, pod := range w.Pods {
			out = append(out, p.Component+"/"+string(pod.UID))
		}
	}
	sort.Strings(out)
	return out
}

// testAgentCutOff stops every lead for over a minute: agents keep every
// workload; when the leads return, status flows again.
func testAgentCutOff(t *testing.T, e *env) {
	ctx := context.Background()
	before, err := e.c.GetApp(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	pods := podUIDs(t, e, before)
	leads := e.f.State().Leads
	for _, p := range leads {
		if err := e.f.KillLead(p.ID); err != nil {
			t.Fatal(err)
		}
	}
	cutAt := time.Now()
	for time.Since(cutAt) < 65*time.Second {
		for _, p := range before.Placements {
			w, err := scenario.WorkloadOn(ctx, e.f, p.Cluster, app, app, p.Component)
			if err != nil || w.Available == 0 {
				t.Fatalf("%s on %s lost while the leads were away (%v)", p.Component, p.Cluster, err)
			}
		}
		time.Sleep(5 * time.Second)
	}
	for _, p := range leads {
		if err := e.f.StartLead(p.ID); err != nil {
			t.Fatal(err)
		}
	}
	back := time.Now()
	leader, err := scenario.Leader(ctx, e.f, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	lc, _ := scenario.LeadClient(e.f, leader)
	err = scenario.Until(ctx, time.Minute, "heartbeats after the leads return", func(ctx context.Context) (bool, string, error) {
		a, err := lc.GetApp(ctx, app)
		if err != nil {
			return false, err.Error(), nil
		}
		for _, s := range a.Statuses {
			if s.Heartbeat.Before(back) {
				return false, fmt.Sprintf("%s@%s last heard %s", s.Component, s.Cluster, s.Heartbeat.Format(time.TimeOnly)), nil
			}
		}
		ok, why := scenario.Healthy(a, scenario.PlacementOf(before))
		return ok, why, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := podUIDs(t, e, before); fmt.Sprint(got) != fmt.Sprint(pods) {
		t.Errorf("workloads restarted while the leads were away:\nbefore %v\nafter  %v", pods, got)
	}
}
