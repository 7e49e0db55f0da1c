package loop

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"qonnect.io/qonnect/internal/fleet"
	"qonnect.io/qonnect/internal/scheduler"
	"qonnect.io/qonnect/internal/spec"
	"qonnect.io/qonnect/lead/kb"
	"qonnect.io/qonnect/lead/liveness"
	"qonnect.io/qonnect/lead/raftstore"
)

// fakeSchedule stands in for the scheduler: a component goes to the first
// cluster of its tier (by name) that is up, not excluded, and not where it
// failed; a cluster labelled "best" wins when the app weights energy.
func fakeSchedule(_ scheduler.Config, in scheduler.Input) []scheduler.Decision {
	var out []scheduler.Decision
	for _, c := range in.App.Spec.Components {
		var cur *scheduler.Placement
		for i := range in.Current {
			if in.Current[i].Component == c.Name {
				cur = &in.Current[i]
			}
		}
		pick := ""
		for _, cl := range in.Clusters {
			if cl.Tier != c.Tier || in.Down[cl.Name] || !in.Excluded[c.Name][cl.Name].IsZero() {
				continue
			}
			if cur != nil && in.Failed[c.Name] && cl.Name == cur.Cluster {
				continue
			}
			if pick == "" || (in.App.Spec.QoS.Energy == 1 && cl.Labels["best"] == "yes") {
				pick = cl.Name
			}
		}
		d := scheduler.Decision{Component: c.Name, Placement: scheduler.Placement{Component: c.Name, Tier: c.Tier, Cluster: pick, Generation: in.Generation}}
		switch {
		case cur == nil || cur.Cluster == "":
			d.Action = scheduler.ActionPlace
			if pick == "" {
				d.Action, d.Placement.Reason = scheduler.ActionPending, "no cluster of tier "+string(c.Tier)
			}
		case in.Down[cur.Cluster] || in.Failed[c.Name]:
			d.Action = scheduler.ActionFailover
		case pick != cur.Cluster:
			d.Action = scheduler.ActionMigrate
		default:
			d.Action = scheduler.ActionKeep
			d.Placement = *cur
		}
		if pick != "" {
			d.Placement.Nodes = []string{pick + "-n1"}
		}
		out = append(out, d)
	}
	return out
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t     *testing.T
	store *raftstore.Store
	live  *liveness.Tracker
	clock *clock
	loop  *Loop
	ctx   context.Context
}

func newEnv(t *testing.T, sched ScheduleFunc) *env {
	_, tr := raft.NewInmemTransport("solo")
	s, err := raftstore.Open(raftstore.Config{ID: "solo", Transport: tr, Bootstrap: true,
		Tuning: raftstore.Tuning{HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for !s.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("no leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := &clock{t: time.Now()}
	live := liveness.New(c.Now())
	e := &env{t: t, store: s, live: live, clock: c, ctx: context.Background()}
	e.loop = New(Config{Store: s, Liveness: live, Schedule: sched, ClusterTimeout: 12 * time.Second, Now: c.Now, MinFullInterval: -1})
	return e
}

func (e *env) apply(typ kb.Type, p any) {
	e.t.Helper()
	if _, err := e.store.Apply(e.ctx, typ, p); err != nil {
		e.t.Fatalf("%s: %v", typ, err)
	}
}

func (e *env) cluster(name string, tier fleet.Tier, labels map[string]string) {
	e.apply(kb.TypeRegisterCluster, kb.RegisterCluster{Cluster: fleet.Cluster{Name: name, Tier: tier, Endpoint: name + ":443", Labels: labels}})
	e.live.Seen(name, e.clock.Now())
}

func (e *env) app(name string, energy float64, comps ...string) {
	a := spec.Application{APIVersion: spec.APIVersion, Kind: spec.Kind, Metadata: spec.Metadata{Name: name}}
	a.Spec.QoS.Energy = energy
	for _, c := range comps {
		a.Spec.Components = append(a.Spec.Components, spec.Component{Name: c, Tier: fleet.TierEdge,
			Resources: []spec.Object{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": c}}}})
	}
	e.apply(kb.TypePutApp, kb.PutApp{Spec: a})
}

func (e *env) status(cluster, app, comp string, phase fleet.Phase) {
	st, _ := e.store.KB().View()
	e.apply(kb.TypeReportStatus, kb.ReportStatus{Cluster: cluster, Statuses: []fleet.ComponentStatus{{App: app, Component: comp, Generation: st.Apps[app].Generation, Phase: phase}}})
}

func (e *env) pass() {
	e.t.Helper()
	if err := e.loop.RunOnce(e.ctx); err != nil {
		e.t.Fatalf("pass: %v", err)
	}
}

func (e *env) placement(app, comp string) *scheduler.Placement {
	st, _ := e.store.KB().View()
	return st.Apps[app].Placements[comp]
}

func (e *env) lastEvent(app string) string {
	st, _ := e.store.KB().View()
	ev := st.Apps[app].Events
	return ev[len(ev)-1].Reason
}

func TestPlacesPendingAndIsStable(t *testing.T) {
	e := newEnv(t, fakeSchedule)
	e.cluster("edge-a", fleet.TierEdge, nil)
	e.app("shop", 0, "web", "db")
	e.pass()
	if p := e.placement("shop", "web"); p == nil || p.Cluster != "edge-a" || p.Generation != 1 || p.Decided.IsZero() {
		t.Fatalf("web = %+v", p)
	}
	if e.lastEvent("shop") != "Placed" {
		t.Fatalf("last event %s", e.lastEvent("shop"))
	}
	idx := e.store.KB().Index()
	e.pass()
	e.loop.full = true
	e.pass()
	if got := e.store.KB().Index(); got != idx {
		t.Fatalf("a pass with nothing new wrote to the KB (%d → %d)", idx, got)
	}
}

func TestPendingWhenNoClusterFits(t *testing.T) {
	e := newEnv(t, fakeSchedule)
	e.app("shop", 0, "web")
	e.pass()
	if p := e.placement("shop", "web"); p == nil || !p.Pending() || p.Reason == "" {
		t.Fatalf("web = %+v", p)
	}
	idx := e.store.KB().Index()
	e.loop.full = true
	e.pass()
	if e.store.KB().Index() != idx {
		t.Fatal("pending component rewritten on every pass")
	}
	e.cluster("edge-a", fleet.TierEdge, nil)
	e.pass()
	if p := e.placement("shop", "web"); p.Cluster != "edge-a" {
		t.Fatalf("not placed once a cluster came: %+v", p)
	}
}

func TestFailoverWhenHeartbeatsStop(t *testing.T) {
	e := newEnv(t, fakeSchedule)
	e.cluster("edge-a", fleet.TierEdge, nil)
	e.cluster("edge-b", fleet.TierEdge, nil)
	e.app("shop", 0, "web")
	e.pass()
	if p := e.placement("shop", "web"); p.Cluster != "edge-a" {
		t.Fatalf("web on %s", p.Cluster)
	}
	e.clock.Advance(8 * time.Second)
	e.live.Seen("edge-b", e.clock.Now())
	e.pass()
	if p := e.placement("shop", "web"); p.Cluster != "edge-a" {
		t.Fatal("failed over before the timeout")
	}
	e.clock.Advance(5 * time.Second) // a silent for 13 s > 12 s
	e.live.Seen("edge-b", e.clock.Now())
	e.pass()
	st, _ := e.store.KB().View()
	p := st.Apps["shop"].Placements["web"]
	if p.Cluster != "edge-b" || p.From != "" {
		t.Fatalf("after a went silent: %+v", p)
	}
	if _, down := st.Down["edge-a"]; !down {
		t.Fatal("down verdict not replicated")
	}
	if until := st.Apps["shop"].Exclusions["web"]["edge-a"]; until.IsZero() {
		t.Fatalf("no exclusion recorded: %+v", st.Apps["shop"].Exclusions)
	}
	if e.lastEvent("shop") != "FailedOver" {
		t.Fatalf("last event %s", e.lastEvent("shop"))
	}
	// a comes back: verdict replicated, web stays (excluded, and stable).
	e.live.Seen("edge-a", e.clock.Now())
	e.pass()
	st, _ = e.store.KB().View()
	if _, down := st.Down["edge-a"]; down || st.Apps["shop"].Placements["web"].Cluster != "edge-b" {
		t.Fatalf("after a came back: down=%v web=%+v", st.Down, st.Apps["shop"].Placements["web"])
	}
}

func TestFailoverOnFailedStatus(t *testing.T) {
	e := newEnv(t, fakeSchedule)
	e.cluster("edge-a", fleet.TierEdge, nil)
	e.cluster("edge-b", fleet.TierEdge, nil)
	e.app("shop", 0, "web")
	e.pass()
	e.status("edge-a", "shop", "web", fleet.PhaseFailed)
	e.pass()
	st, _ := e.store.KB().View()
	if p := st.Apps["shop"].Placements["web"]; p.Cluster != "edge-b" {
		t.Fatalf("web = %+v", p)
	}
	if st.Apps["shop"].Status("web", "edge-a") != nil || len(st.Assignments("edge-a")) != 0 {
		t.Fatal("failed cluster still has the component")
	}
}

func TestMigrationIsMakeBeforeBreak(t *testing.T) {
	e := newEnv(t, fakeSchedule)
	e.cluster("edge-a", fleet.TierEdge, nil)
	e.cluster("edge-b", fleet.TierEdge, map[string]string{"best": "yes"})
	e.app("shop", 0, "web")
	e.pass()
	e.status("edge-a", "shop", "web", fleet.PhaseHealthy)
	e.app("shop", 1, "web") // QoS change: energy now prefers edge-b
	e.pass()
	p := e.placement("shop", "web")
	if p.Cluster != "edge-b" || p.From != "edge-a" || p.Generation != 2 {
		t.Fatalf("migrating web = %+v", p)
	}
	st, _ := e.store.KB().View()
	if as := st.Assignments("edge-a"); len(as) != 1 || !as[0].Leaving {
		t.Fatalf("old home's assignments = %+v", as)
	}
	// Still progressing on b: a keeps it.
	e.status("edge-b", "shop", "web", fleet.PhaseProgressing)
	e.pass()
	if p := e.placement("shop", "web"); p.From != "edge-a" {
		t.Fatal("released the old home before the new one was healthy")
	}
	e.status("edge-b", "shop", "web", fleet.PhaseHealthy)
	e.pass()
	if p := e.placement("shop", "web"); p.From != "" || p.Cluster != "edge-b" {
		t.Fatalf("after b healthy: %+v", p)
	}
	if e.lastEvent("shop") != "Migrated" {
		t.Fatalf("last event %s", e.lastEvent("shop"))
	}
	st, _ = e.store.KB().View()
	if len(st.Assignments("edge-a")) != 0 {
		t.Fatal("old home still assigned")
	}
}

func TestGraceAfterLeadershipChange(t *testing.T) {
	e := newEnv(t, fakeSchedule)
	e.cluster("edge-a", fleet.TierEdge, nil)
	e.app("shop", 0, "web")
	e.pass()
	e.clock.Advance(time.Minute) // long silent under the old leader…
	e.live.Reset(e.clock.Now())  // …but we just became leader
	e.pass()
	st, _ := e.store.KB().View()
	if _, down := st.Down["edge-a"]; down {
		t.Fatal("cluster declared down without a full timeout of grace")
	}
	e.clock.Advance(13 * time.Second)
	e.pass()
	st, _ = e.store.KB().View()
	if _, down := st.Down["edge-a"]; !down {
		t.Fatal("cluster not declared down after the grace")
	}
}

func TestSchedulerPanicIsContained(t *testing.T) {
	e := newEnv(t, func(cfg scheduler.Config, in scheduler.Input) []scheduler.Decision {
		if in.App.Metadata.Name == "bad" {
			panic("boom")
		}
		return fakeSchedule(cfg, in)
	})
	e.cluster("edge-a", fleet.TierEdge, nil)
	e.app("bad", 0, "web")
	e.app("good", 0, "web")
	e.pass()
	if p := e.placement("good", "web"); p == nil || p.Cluster != "edge-a" {
		t.Fatalf("good app not placed: %+v", p)
	}
}

func TestFollowerNeverSchedules(t *testing.T) {
	_, tr := raft.NewInmemTransport("lonely")
	s, err := raftstore.Open(raftstore.Config{ID: "lonely", Transport: tr}) // not bootstrapped: never leader
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l := New(Config{Store: s, Schedule: fakeSchedule})
	if err := l.RunOnce(context.Background()); !errors.Is(err, raftstore.ErrNotLeader) {
		t.Fatalf("RunOnce on a follower: %v", err)
	}
}

func TestRunReactsToChanges(t *testing.T) {
	e := newEnv(t, fakeSchedule)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.loop.cfg.Now = time.Now
	e.live.Reset(time.Now())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.loop.Run(ctx) }()
	e.cluster("edge-a", fleet.TierEdge, nil)
	start := time.Now()
	e.app("shop", 0, "web")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if p := e.placement("shop", "web"); p != nil && p.Cluster == "edge-a" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("loop did not place the new application")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("placement took %v", d)
	}
	cancel()
	<-done
}

// With the real scheduler: placements land, keep their explanations, and a
// second pass over unchanged facts stores nothing.
func TestRealSchedulerIsStable(t *testing.T) {
	e := newEnv(t, scheduler.Schedule)
	e.loop.cfg.Prepare = scheduler.Prepare
	for _, name := range []string{"edge-a", "edge-b"} {
		e.cluster(name, fleet.TierEdge, nil)
		e.apply(kb.TypeReportNodes, kb.ReportNodes{Cluster: name, Full: true, Nodes: []fleet.Node{{Name: "n1", Ready: true,
			Labels:      map[string]string{fleet.LabelEnergy: "0.0024", fleet.LabelPrice: "1.5", fleet.LabelBandwidth: "1000000000"},
			Allocatable: fleet.Resources{MilliCPU: 4000, MemoryBytes: 8 << 30, EphemeralStorage: 100 << 30, Pods: 110}}}})
	}
	e.clock.t = time.Now()
	e.live.Seen("edge-a", e.clock.Now())
	e.live.Seen("edge-b", e.clock.Now())
	e.app("shop", 1, "web", "db")
	e.pass()
	st, _ := e.store.KB().View()
	app := st.Apps["shop"]
	for _, comp := range []string{"web", "db"} {
		p := app.Placement(comp)
		if p == nil || p.Cluster == "" || p.Explanation == nil || p.Explanation.Chosen != p.Cluster {
			t.Fatalf("%s = %+v", comp, p)
		}
	}
	idx := e.store.KB().Index()
	e.loop.full = true
	e.pass()
	if e.store.KB().Index() != idx {
		t.Fatal("the real scheduler's second pass changed placements")
	}
}

func TestFullPassesAreSpacedOut(t *testing.T) {
	e := newEnv(t, fakeSchedule)
	e.loop.cfg.MinFullInterval = 5 * time.Second
	e.app("shop", 0, "web")
	e.pass() // pending: no cluster
	e.pass() // looks once more at what it wrote
	e.cluster("edge-a", fleet.TierEdge, nil)
	e.pass() // the fleet changed, but a full pass just ran
	if p := e.placement("shop", "web"); !p.Pending() {
		t.Fatalf("full pass not spaced out: %+v", p)
	}
	if !e.loop.fullDue {
		t.Fatal("the put-off full pass is not due")
	}
	e.clock.Advance(6 * time.Second)
	e.live.Seen("edge-a", e.clock.Now())
	e.pass()
	if p := e.placement("shop", "web"); p.Cluster != "edge-a" {
		t.Fatalf("due full pass did not place: %+v", p)
	}
}

// A migration whose new home fails keeps the old home until a third one
// is healthy: never break before make.
func TestFailoverDuringMigrationKeepsTheOldHome(t *testing.T) {
	e := newEnv(t, fakeSchedule)
	e.cluster("edge-a", fleet.TierEdge, nil)
	e.cluster("edge-b", fleet.TierEdge, map[string]string{"best": "yes"})
	e.app("shop", 0, "web")
	e.pass()
	e.status("edge-a", "shop", "web", fleet.PhaseHealthy)
	e.app("shop", 1, "web")
	e.pass()
	e.cluster("edge-c", fleet.TierEdge, map[string]string{"best": "yes"}) // where the fake goes next
	if p := e.placement("shop", "web"); p.Cluster != "edge-b" || p.From != "edge-a" {
		t.Fatalf("migrating: %+v", p)
	}
	e.status("edge-b", "shop", "web", fleet.PhaseFailed)
	e.pass()
	if p := e.placement("shop", "web"); p.Cluster != "edge-c" || p.From != "edge-a" {
		t.Fatalf("after the new home failed: %+v", p)
	}
}
